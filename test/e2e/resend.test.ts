import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { simpleParser } from "mailparser";
import { RESEND_ADDRESS_POINTS } from "../../src/domain/limiter.ts";
import { cli } from "../helpers/cli.ts";
import { metricSample, postRegistration, registration, storeSnapshot, verifyToken, withHarness, type Harness } from "../helpers/harness.ts";

// DESIGN §11 "Resending", over HTTP with a real SMTP sink: the verify page's "send the mail again"
// and `pending resend`. The address is never stored in the clear once the first mail went out, so
// whoever asks gives it again; the new link replaces the old one.

const RESEND = "/register_account/verify/resend";

/** The verify link of the `index`th mail at the sink (waiting for it), as a token. */
async function tokenOfMail(h: Harness, index: number): Promise<{ token: string; to: string[] }> {
  await drain(h);
  const received = await h.smtp.sink.waitForMail(index + 1);
  const mail = await simpleParser(received[index]!.raw);
  const link = /^https?:\/\/\S+\/verify\/(\S+)$/m.exec(mail.text ?? "")?.[1];
  assert.ok(link, "the mail carries a verify link");
  return { token: decodeURIComponent(link), to: received[index]!.to };
}

/** Registers `fields` and waits for its first mail; the harness clock is the wall clock (the CLI reads that one). */
async function registered(h: Harness, fields: ReturnType<typeof registration>): Promise<string> {
  h.clock.t = Date.now();
  const res = await postRegistration(h, fields);
  assert.equal(res.status, 200, res.text);
  const first = await tokenOfMail(h, 0);
  assert.equal(first.token, res.text);
  return res.text;
}

function askResend(h: Harness, username: string, mail: string) {
  return h.http.post(RESEND).type("form").send({ username, mail });
}

/** Sends what is due; the CLI queues by the wall clock, so the harness clock catches up with it first. */
async function drain(h: Harness): Promise<void> {
  h.clock.t = Math.max(h.clock.t, Date.now());
  await h.outbox.drain();
}

async function mailsAfterDrain(h: Harness): Promise<number> {
  await drain(h);
  return h.smtp.sink.received.length;
}

describe("resending the verification mail", () => {
  test("the resend form mails a new link to the address; the old link then fails and the new one creates the account", async () => {
    await withHarness({}, async (h) => {
      const fields = registration({ username: "Rosa", mail: "rosa.resend@example.org" });
      const oldToken = await registered(h, fields);

      const form = await h.http.get(RESEND);
      assert.equal(form.status, 200);
      assert.match(form.text, /name="username"/);
      assert.match(form.text, /name="mail"/);

      const res = await askResend(h, "Rosa", "  ROSA.resend@example.org ");
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /id="resent"/);
      const second = await tokenOfMail(h, 1);
      assert.deepEqual(second.to, ["rosa.resend@example.org"]);
      assert.notEqual(second.token, oldToken);

      const old = await h.http.get(`/register_account/verify/${encodeURIComponent(oldToken)}`);
      assert.equal(old.status, 404, "the old link shows the failure page");
      assert.match(old.text, /could not verify/);
      assert.equal((await verifyToken(h, oldToken)).status, 404);
      const done = await verifyToken(h, second.token);
      assert.equal(done.status, 200, done.text);
      assert.equal(done.body.username, "rosa");
      assert.equal(metricSample((await h.http.get("/metrics")).text, 'gatehouse_verification_resends_total{outcome="sent"}'), 1);
    }, { smtp: true });
  });

  test("past register.resendLimit the form answers as always and mails nothing; the last link still works", async () => {
    await withHarness({ register: { resendLimit: 2 } }, async (h) => {
      const fields = registration({ username: "Lim", mail: "lim.resend@example.org" });
      await registered(h, fields);
      for (const n of [1, 2]) {
        assert.equal((await askResend(h, fields.username, fields.mail)).status, 200);
        await tokenOfMail(h, n);
      }
      const last = await tokenOfMail(h, 2);
      const past = await askResend(h, fields.username, fields.mail);
      assert.equal(past.status, 200);
      assert.match(past.text, /id="resent"/);
      assert.match(past.text, /try again later/);
      assert.equal(await mailsAfterDrain(h), 3, "no fourth mail");
      assert.equal(metricSample((await h.http.get("/metrics")).text, 'gatehouse_verification_resends_total{outcome="limit"}'), 1);
      assert.equal((await verifyToken(h, last.token)).status, 200, "the last link sent still completes");
    }, { smtp: true });
  });

  test("a name or address that matches no registration gets the very same answer, and nothing is mailed or changed", async () => {
    await withHarness({}, async (h) => {
      const fields = registration({ username: "Same", mail: "same.resend@example.org" });
      const token = await registered(h, fields);
      const real = await askResend(h, fields.username, fields.mail);
      await tokenOfMail(h, 1);
      const before = await storeSnapshot(h);

      const nobody = await askResend(h, "nobody", "nobody.resend@example.org");
      const wrongAddress = await askResend(h, fields.username, "other.resend@example.org");
      for (const res of [nobody, wrongAddress]) {
        assert.equal(res.status, real.status);
        assert.equal(res.text, real.text, "the same page, byte for byte");
        assert.equal(res.headers["content-type"], real.headers["content-type"]);
      }
      assert.equal(await mailsAfterDrain(h), 2, "no mail for either");
      assert.deepEqual(await storeSnapshot(h), before);
      assert.equal((await verifyToken(h, token)).status, 404, "the link of the first mail was replaced by the real resend");
      const logs = h.logs.text();
      assert.ok(!logs.includes("nobody.resend@example.org") && !logs.includes("other.resend@example.org"), "no address is logged");
    }, { smtp: true });
  });

  test("past the per-address limit the form says to try later (429), for an address with a registration or without", async () => {
    await withHarness({ register: { resendLimit: 10 } }, async (h) => {
      const fields = registration({ username: "Bomb", mail: "bomb.resend@example.org" });
      await registered(h, fields);
      // Across registrations: the names differ, the address is the one counted. Each mail is sent
      // before the next request: a new link drops a mail still queued with the old one.
      for (let i = 0; i < RESEND_ADDRESS_POINTS; i++) {
        const name = i % 2 === 0 ? fields.username : `other${i}`;
        assert.equal((await askResend(h, name, fields.mail)).status, 200);
        await drain(h);
      }
      const refused = await askResend(h, fields.username, fields.mail);
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers["retry-after"]) > 0, "Retry-After says when");
      assert.match(refused.text, /Too many mails were asked for this address/);
      assert.match(refused.text, /value="bomb.resend@example.org"/, "the form comes back with what was typed");
      assert.equal(await mailsAfterDrain(h), 1 + 3, "three resends matched the registration; the refused one sent nothing");

      for (let i = 0; i < RESEND_ADDRESS_POINTS; i++) assert.equal((await askResend(h, "ghost", "ghost.resend@example.org")).status, 200);
      assert.equal((await askResend(h, "ghost", "ghost.resend@example.org")).status, 429, "the same for an address nobody registered");
      assert.equal((await askResend(h, "ghost", "ghost2.resend@example.org")).status, 200, "another address is not held back");
      assert.equal(metricSample((await h.http.get("/metrics")).text, 'gatehouse_verification_resends_total{outcome="rate_limited"}'), 2);
    }, { smtp: true });
  });

  test("a resend with an address that is not one comes back with the reason at the mail field (400) and changes nothing", async () => {
    await withHarness({}, async (h) => {
      const before = await storeSnapshot(h);
      const res = await askResend(h, "someone", "not an address");
      assert.equal(res.status, 400);
      assert.match(res.text, /<input id="mail" name="mail"[^>]*aria-invalid="true" aria-describedby="mail-error"/);
      assert.match(res.text, /id="mail-error">This is not a mail address/);
      assert.deepEqual(await storeSnapshot(h), before);
      const json = await h.http.post(RESEND).set("Accept", "application/json").send({ username: "x", mail: "x".repeat(300) + "@example.org" });
      assert.equal(json.status, 400);
      assert.equal(json.body.error, "MALFORMED_REQUEST");
    });
  });

  test("pending resend from the CLI: requeues a mail not yet sent; after sending it needs the address, checks it, and keeps to the limit", async () => {
    await withHarness({ register: { resendLimit: 1 } }, async (h) => {
      const none = await cli(h, "pending", "resend", "nobody");
      assert.equal(none.code, 1);
      assert.match(none.err.join("\n"), /no pending registration named "nobody"/);

      const fields = registration({ username: "Cli", mail: "cli.resend@example.org" });
      const first = await registered(h, fields);

      const without = await cli(h, "pending", "resend", "cli");
      assert.equal(without.code, 1);
      assert.match(without.err.join("\n"), /sent already.*--mail ADDRESS/s);

      const wrong = await cli(h, "pending", "resend", "cli", "--mail", "someone.else@example.org");
      assert.equal(wrong.code, 1);
      assert.match(wrong.err.join("\n"), /not the address "cli" registered with/);
      assert.equal(await mailsAfterDrain(h), 1);

      const ok = await cli(h, "pending", "resend", "Cli", "--mail", fields.mail);
      assert.equal(ok.code, 0, ok.err.join("\n"));
      assert.match(ok.out.join("\n"), /new verification link for cli .*old link no longer works/);
      const second = await tokenOfMail(h, 1);
      assert.deepEqual(second.to, [fields.mail]);

      const limit = await cli(h, "pending", "resend", "cli", "--mail", fields.mail);
      assert.equal(limit.code, 1);
      assert.match(limit.err.join("\n"), /resend limit .* is reached/);

      assert.equal((await verifyToken(h, first)).status, 404, "the first link is dead");
      assert.equal((await verifyToken(h, second.token)).status, 200, "the new one creates the account");
      const gone = await cli(h, "pending", "resend", "cli", "--mail", fields.mail);
      assert.equal(gone.code, 1);
      assert.match(gone.err.join("\n"), /no pending registration/);
    }, { smtp: true });
  });

  test("pending resend of a mail still queued requeues it without a new link and without counting it", async () => {
    await withHarness({ register: { resendLimit: 0 } }, async (h) => {
      h.clock.t = Date.now();
      const fields = registration({ username: "Queued", mail: "queued.resend@example.org" });
      const res = await postRegistration(h, fields);
      assert.equal(res.status, 200);
      const requeued = await cli(h, "pending", "resend", "queued");
      assert.equal(requeued.code, 0, requeued.err.join("\n"));
      assert.match(requeued.out.join("\n"), /requeued the verification mail for queued \(was queued\)/);
      const mail = await tokenOfMail(h, 0);
      assert.equal(mail.token, res.text, "the mail carries the first and only link");
      const limited = await cli(h, "pending", "resend", "queued", "--mail", fields.mail);
      assert.equal(limited.code, 1, "with resendLimit 0 no new link is ever sent");
      assert.match(limited.err.join("\n"), /resend limit/);
    }, { smtp: true });
  });

  test("the new mail is in the language of the resend page; from the CLI, in the registration's own language", async () => {
    await withHarness({ languages: ["en", "de", "fr"] }, async (h) => {
      const fields = { ...registration({ username: "Lena", mail: "lena.resend@example.org" }), lang: "de" };
      await registered(h, fields);
      assert.match((await simpleParser(h.smtp.sink.received[0]!.raw)).subject ?? "", /^Bestätigen Sie Ihr neues Konto/);

      const res = await h.http.post(`${RESEND}?lang=fr`).type("form").send({ username: fields.username, mail: fields.mail });
      assert.equal(res.status, 200);
      assert.match(res.text, /Consultez votre messagerie/, "the answer page is French too");
      await tokenOfMail(h, 1);
      assert.match((await simpleParser(h.smtp.sink.received[1]!.raw)).subject ?? "", /^Confirmez votre nouveau compte/);

      assert.equal((await cli(h, "pending", "resend", "lena", "--mail", fields.mail)).code, 0);
      await tokenOfMail(h, 2);
      assert.match((await simpleParser(h.smtp.sink.received[2]!.raw)).subject ?? "", /^Bestätigen Sie Ihr neues Konto/);
    }, { smtp: true });
  });
});
