import { test } from "node:test";
import assert from "node:assert/strict";
import { simpleParser } from "mailparser";
import { runCli } from "../../src/cli/index.ts";
import { createHarness, postRegistration, registration, verifyToken } from "../helpers/harness.ts";
import { cli } from "../helpers/invites.ts";
import { captureIo, countLogs, postRegistrationTo, waitFor, withServiceDir } from "../helpers/service.ts";

// Mail that never gets lost: a registration answered 200 has its mail in the store, and the
// outbox keeps trying (2 s, 4 s, 8 s … up to 10 min) until the SMTP server takes it, once.

const VERIFY_PREFIX = "http://gatehouse.test/register_account/verify/";

/** `gatehouse pending ARGS --config FILE`, as an admin runs it next to the running service. */
async function pending(configPath: string, ...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const { out, err, io } = captureIo();
  const code = await runCli(["pending", ...args, "--config", configPath], io);
  return { code, out, err };
}

/** NAME → MAIL-STATUS from `pending list`. */
async function mailStatuses(configPath: string): Promise<Map<string, string>> {
  const res = await pending(configPath, "list");
  assert.equal(res.code, 0, res.err.join("\n"));
  return new Map(res.out.slice(1).map((line) => {
    const columns = line.split("\t");
    assert.equal(columns.length, 7, `seven columns: ${line}`);
    return [columns[0]!, columns[4]!];
  }));
}

test("mail for 10 registrations accepted while the SMTP server is down arrives exactly once when it is back", async () => {
  await withServiceDir({}, async ({ cfg, start, smtp }) => {
    const svc = await start();
    const configPath = cfg.configPath;

    const people = Array.from({ length: 10 }, (_, i) => registration({ username: `outage${i}`, mail: `outage${i}@example.org` }));
    const answers = await Promise.all(people.map((fields) => postRegistrationTo(svc.service.url, fields)));
    const tokens = new Map<string, string>();
    for (const [i, res] of answers.entries()) {
      assert.equal(res.status, 200, `registration ${i} while SMTP is down: ${res.text}`);
      tokens.set(people[i]!.mail, res.text);
    }

    // Every mail has been tried and refused at the door, and the retries carry on during the outage.
    const failedOnce = () => new Set(svc.logs.lines.filter((l) => l["msg"] === "outbox send failed, will retry").map((l) => l["outboxId"]));
    await waitFor(() => failedOnce().size === 10, { timeoutMs: 10_000, what: "a failed first attempt for each of the 10 mails" });
    const statuses = await mailStatuses(configPath);
    assert.deepEqual([...statuses.keys()].sort(), people.map((p) => p.username).sort());
    assert.ok([...statuses.values()].every((s) => s === "queued"), `all queued during the outage: ${[...statuses.values()].join(" ")}`);
    await waitFor(() => svc.logs.lines.some((l) => l["msg"] === "outbox send failed, will retry" && l["attempts"] === 2), {
      timeoutMs: 10_000,
      what: "a second failed attempt, 2 s into the outage",
    });
    assert.equal(countLogs(svc.logs, "outbox item failed for good"), 0, "an unreachable server is not a refusal");

    const sink = await smtp.start();
    await sink.waitForMail(10, 15_000);
    await waitFor(async () => [...(await mailStatuses(configPath)).values()].every((s) => s === "sent"), {
      timeoutMs: 5_000,
      what: "pending list to show every mail sent",
    });
    // Several more poll intervals (100 ms each) must not send anything again.
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    const recipients = sink.received.flatMap((m) => m.to).sort();
    assert.deepEqual(recipients, people.map((p) => p.mail).sort(), "each recipient exactly once");
    for (const received of sink.received) {
      const mail = await simpleParser(received.raw);
      const token = tokens.get(received.to[0]!);
      assert.ok(token, `a token for ${received.to[0]}`);
      assert.ok(mail.text?.includes(`${VERIFY_PREFIX}${encodeURIComponent(token)}`), `the mail to ${received.to[0]} carries its own link`);
    }
    assert.equal(countLogs(svc.logs, "mail sent"), 10);
    assert.equal(await svc.service.ctx.store.outboxDepth(), 0);
  }, { smtp: "down" });
});

test("pending resend queues a refused verification mail again and it is delivered once", async () => {
  await withServiceDir({}, async ({ cfg, start, smtp }) => {
    const refusing = smtp.sink;
    const svc = await start();
    const configPath = cfg.configPath;
    const fields = registration({ username: "Nora", mail: "nora.outage@example.org" });
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);

    await waitFor(async () => (await mailStatuses(configPath)).get("nora") === "failed", { what: "pending list to show the mail failed" });
    assert.equal(refusing.rcptAttempts.length, 1, "a 5xx is not retried");

    // The admin fixed the mailbox (the refusing server is replaced); the name is prepared as at registration.
    const sink = await smtp.start();
    const resend = await pending(configPath, "resend", "NORA");
    assert.equal(resend.code, 0, resend.err.join("\n"));
    assert.deepEqual(resend.out, ["requeued the verification mail for nora (was failed)"]);

    await sink.waitForMail(1, 5_000);
    await waitFor(async () => (await mailStatuses(configPath)).get("nora") === "sent", { what: "pending list to show the mail sent" });
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(sink.received.length, 1, "delivered once");
    assert.deepEqual(sink.received[0]!.to, ["nora.outage@example.org"]);
    const mail = await simpleParser(sink.received[0]!.raw);
    assert.ok(mail.text?.includes(`${VERIFY_PREFIX}${encodeURIComponent(res.text)}`), "the same link as before");

    const again = await pending(configPath, "resend", "nora");
    assert.equal(again.code, 1);
    assert.equal(again.out.length, 0);
    assert.match(again.err.join("\n"), /^gatehouse: the verification mail for "nora" was sent already/);

    const unknown = await pending(configPath, "resend", "nobody");
    assert.equal(unknown.code, 1);
    assert.deepEqual(unknown.err, ['gatehouse: no pending registration named "nobody"']);
  }, { smtp: { refuseRcpt: { code: 550, message: "5.1.1 mailbox unavailable" } } });
});

test("pending resend refuses a registration that has no stored mail, and an account", async () => {
  const h = await createHarness({ register: { sendMail: false } });
  try {
    h.clock.t = Date.now();
    const res = await postRegistration(h, registration({ username: "olga" }));
    assert.equal(res.status, 200, res.text);
    const listed = await cli(h, "pending", "list");
    assert.equal(listed.code, 0, listed.err.join("\n"));
    assert.equal(listed.out.length, 2, "a header and one registration");
    assert.equal(listed.out[1]!.split("\t")[4], "none");

    const resend = await cli(h, "pending", "resend", "olga");
    assert.equal(resend.code, 1);
    assert.match(resend.err.join("\n"), /^gatehouse: no verification mail is stored for "olga"/);

    const done = await verifyToken(h, res.text);
    assert.equal(done.status, 200, done.text);
    const account = await cli(h, "pending", "resend", "olga");
    assert.equal(account.code, 1);
    assert.deepEqual(account.err, ['gatehouse: no pending registration named "olga"']);
    assert.equal(await h.ctx.store.outboxDepth(), 0, "nothing was queued");

    const usage = await cli(h, "pending", "resend");
    assert.equal(usage.code, 2, "a missing name is a usage error");
  } finally {
    await h.close();
  }
});
