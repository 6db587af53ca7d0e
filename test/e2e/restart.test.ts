import { test } from "node:test";
import assert from "node:assert/strict";
import { anyHolds, assertNoneInClear, sqliteFiles } from "../helpers/files.ts";
import { registration } from "../helpers/harness.ts";
import { freePort, postRegistrationTo, waitFor, withServiceDir, type TestService } from "../helpers/service.ts";

const VERIFY = "/register_account/verify/";

async function completeToken(svc: TestService, token: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${svc.service.url}${VERIFY}${encodeURIComponent(token)}`, {
    method: "POST",
    headers: { accept: "application/json" },
  });
  return { status: res.status, body: await res.json() };
}

test("a pending registration survives a restart and its token completes on the new process", () =>
  withServiceDir({}, async ({ cfg, start, stop }) => {
    const fields = registration({ username: "Grace", mail: "grace.restart@example.org" });

    let svc = await start();
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;
    await stop();

    svc = await start();
    const pending = await svc.service.ctx.store.listPending(Date.now());
    assert.deepEqual(pending.map((p) => p.username), ["grace"]);
    const confirm = await fetch(`${svc.service.url}${VERIFY}${token}`);
    assert.equal(confirm.status, 200);
    assert.match(await confirm.text(), /<strong id="username">grace<\/strong>/);
    assert.deepEqual(await completeToken(svc, token), { status: 200, body: { username: "grace", alreadyActive: false } });
    assert.deepEqual((await svc.service.ctx.store.listAccounts()).map((a) => a.username), ["grace"]);
  }));

test("an account survives a restart: its name and its mail stay taken", () =>
  withServiceDir({}, async ({ cfg, start, stop }) => {
    const fields = registration({ username: "heidi", mail: "heidi.restart@example.org" });

    let svc = await start();
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;
    assert.equal((await completeToken(svc, token)).status, 200);
    await stop();

    svc = await start();
    const accounts = await svc.service.ctx.store.listAccounts();
    assert.deepEqual(accounts.map((a) => [a.username, a.hasMail]), [["heidi", true]]);
    // The name, and the mail hash (so the secret it is keyed with was kept too).
    const sameName = await postRegistrationTo(svc.service.url, registration({ username: "heidi" }));
    assert.equal(sameName.status, 409, sameName.text);
    const sameMail = await postRegistrationTo(svc.service.url, registration({ mail: "Heidi.Restart@example.org" }));
    assert.equal(sameMail.status, 409, sameMail.text);
    // The token completed moments ago still shows "already active" after the restart.
    assert.deepEqual(await completeToken(svc, token), { status: 200, body: { username: "heidi", alreadyActive: true } });
  }));

test("after register, mail sent and verify the SQLite files hold no password, address or token in the clear", () =>
  withServiceDir({}, async ({ cfg, start, stop }) => {
    const fields = registration({ username: "ivan", password: "corrëct hörse bättery staple", mail: "ivan.secret-box@example.org" });

    const svc = await start();
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;
    const store = svc.service.ctx.store;
    await waitFor(async () => (await store.listPending(Date.now()))[0]?.mailStatus === "sent", { what: "the mail to be written" });
    assert.equal((await completeToken(svc, token)).status, 200);

    const secrets = { password: fields.password, "mail address": fields.mail, "mail local part": "ivan.secret-box", token };
    const files = sqliteFiles(cfg.dir);
    assert.ok(anyHolds(files, fields.username), "the username is stored in the clear, so the scan sees the rows");
    assertNoneInClear(files, secrets);
    await stop();
    assertNoneInClear(sqliteFiles(cfg.dir), secrets);
  }));

test("while the mail is still queued the SQLite files hold neither the address nor the token in the clear", async () => {
  // Nothing listens there: every send fails and the sealed payload stays in the outbox.
  const closedPort = await freePort();
  await withServiceDir({ mail: { transport: `smtp://127.0.0.1:${closedPort}/?ignoreTLS=true` } }, async ({ cfg, start, stop }) => {
    const fields = registration({ username: "judy", password: "corrëct hörse bättery staple", mail: "judy.secret-box@example.org" });

    const svc = await start();
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;
    await waitFor(() => svc!.logs.lines.some((l) => l["msg"] === "outbox send failed, will retry"), {
      what: "a failed send attempt",
    });
    const pending = await svc.service.ctx.store.listPending(Date.now());
    assert.equal(pending[0]?.mailStatus, "queued");
    assert.equal(await svc.service.ctx.store.outboxDepth(), 1);

    const secrets = { password: fields.password, "mail address": fields.mail, "mail local part": "judy.secret-box", token };
    const files = sqliteFiles(cfg.dir);
    assert.ok(anyHolds(files, fields.username), "the username is stored in the clear, so the scan sees the rows");
    assertNoneInClear(files, secrets);
    await stop();
    assertNoneInClear(sqliteFiles(cfg.dir), secrets);
  });
});
