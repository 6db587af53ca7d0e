import { test } from "node:test";
import assert from "node:assert/strict";
import { findDisposableDomain } from "../../src/domain/disposable.ts";
import { cli } from "../helpers/invites.ts";
import {
  createHarness,
  postRegistration,
  postRegistrationJson,
  registration,
  storeSnapshot,
  withHarness,
} from "../helpers/harness.ts";

// register.blockDisposable: a mail rule next to the filters of DESIGN §3 row 7, fed by the
// disposable-email-domains list (npm disposable-email-domains-js).

type Overrides = Parameters<typeof createHarness>[0];

const BLOCKING: Overrides = { register: { blockDisposable: true } };

const DISPOSABLE = [
  "joe@mailinator.com",
  "joe@sub.mailinator.com",
  "joe@a.b.c.mailinator.com",
  "Joe@MAILINATOR.COM",
  "joe@Sub.MailInator.Com",
  " joe@mailinator.com ",
  "joe@guerrillamail.com",
  // Listed as xn--d-bga.net: the Unicode form is the same domain.
  "joe@dé.net",
];

const ORDINARY = ["joe@example.org", "joe@gmail.com", "joe@mailinator.com.example.org", "joe@xmailinator.example", "mailinator.com@example.org"];

test("the list knows mailinator.com and its subdomains, in any case, and not ordinary domains", () => {
  assert.equal(findDisposableDomain("joe@mailinator.com"), "mailinator.com");
  assert.equal(findDisposableDomain("joe@sub.mailinator.com"), "mailinator.com");
  assert.equal(findDisposableDomain("joe@MAILINATOR.com"), "mailinator.com");
  assert.equal(findDisposableDomain("joe@dé.net"), "xn--d-bga.net");
  for (const mail of ORDINARY) assert.equal(findDisposableDomain(mail), null, mail);
  assert.equal(findDisposableDomain("no-at-sign"), null);
});

test("with blockDisposable on, a listed domain or a subdomain of one is refused 403 MAIL_DISPOSABLE and nothing is stored", async () => {
  await withHarness(BLOCKING, async (h) => {
    assert.equal((await postRegistration(h, registration({ username: "keeper" }))).status, 200, "a seed registration is accepted");
    const before = await storeSnapshot(h);
    for (const mail of DISPOSABLE) {
      const res = await postRegistrationJson(h, registration({ mail }));
      assert.equal(res.status, 403, `${mail}: ${res.text}`);
      assert.equal(res.body.error, "MAIL_DISPOSABLE", mail);
      assert.match(res.body.message, /disposable/, mail);
      assert.deepEqual(await storeSnapshot(h), before, `${mail}: nothing stored changed`);
    }
    const refusals = h.logs.lines.filter((l) => l["code"] === "MAIL_DISPOSABLE");
    assert.equal(refusals.length, DISPOSABLE.length, "every refusal is logged with its code");
    assert.ok(!h.logs.text().includes("joe@"), "the refused addresses are not logged");
  });
});

test("with blockDisposable on, the plain-text refusal names the reason", async () => {
  await withHarness(BLOCKING, async (h) => {
    const res = await postRegistration(h, registration({ mail: "joe@sub.mailinator.com" }));
    assert.equal(res.status, 403);
    assert.match(String(res.headers["content-type"]), /^text\/plain/);
    assert.match(res.text, /disposable mail addresses \(mailinator\.com\)/);
  });
});

test("with blockDisposable on, ordinary domains are accepted", async () => {
  await withHarness(BLOCKING, async (h) => {
    for (const mail of ORDINARY) {
      const res = await postRegistrationJson(h, registration({ mail }));
      assert.equal(res.status, 200, `${mail}: ${res.text}`);
    }
  });
});

test("with blockDisposable off (the default), disposable domains are accepted", async () => {
  await withHarness({}, async (h) => {
    assert.equal(h.config.register.blockDisposable, false);
    for (const mail of ["joe@mailinator.com", "jim@sub.mailinator.com"]) {
      const res = await postRegistrationJson(h, registration({ mail }));
      assert.equal(res.status, 200, `${mail}: ${res.text}`);
    }
    assert.equal((await storeSnapshot(h)).pending.length, 2);
  });
});

test("the disposable check comes right after the mail filters and before the username checks", async () => {
  await withHarness({ register: { blockDisposable: true, filteredMails: ["^spam@"], blacklist: ["203.0.113.0/24"] } }, async (h) => {
    const filtered = await postRegistrationJson(h, registration({ mail: "spam@mailinator.com" }));
    assert.equal(filtered.body.error, "MAIL_FILTERED", filtered.text);
    const badName = await postRegistrationJson(h, registration({ mail: "joe@mailinator.com", username: "two words", password: "x" }));
    assert.equal(badName.body.error, "MAIL_DISPOSABLE", badName.text);
    const badToken = await postRegistrationJson(h, registration({ mail: "joe@mailinator.com", auth_token: "wrong" }));
    assert.equal(badToken.body.error, "AUTH_TOKEN_INVALID", badToken.text);
    const blacklisted = await postRegistrationJson(h, registration({ mail: "joe@mailinator.com", ip: "203.0.113.9" }));
    assert.equal(blacklisted.body.error, "IP_BLACKLISTED", blacklisted.text);
  });
});

test("turning blockDisposable on by a config reload takes effect at once", async () => {
  await withHarness({}, async (h) => {
    assert.equal((await postRegistrationJson(h, registration({ mail: "a@mailinator.com" }))).status, 200);
    const { applyConfig } = await import("../../src/context.ts");
    applyConfig(h.ctx, { ...h.config, register: { ...h.config.register, blockDisposable: true } });
    const res = await postRegistrationJson(h, registration({ mail: "b@mailinator.com" }));
    assert.equal(res.status, 403, res.text);
    assert.equal(res.body.error, "MAIL_DISPOSABLE");
  });
});

test("filters test says a disposable address would be refused when blockDisposable is on", async () => {
  await withHarness(BLOCKING, async (h) => {
    const { code, out, err } = await cli(h, "filters", "test", "--ip", "192.0.2.1", "--mail", "x@Sub.Mailinator.com");
    assert.equal(code, 0, err.join("\n"));
    const text = out.join("\n");
    assert.ok(out.some((l) => l.startsWith("refused:") && l.includes("mailinator.com") && l.includes("disposable")), text);
    assert.ok(!out.some((l) => l.startsWith("allowed")), text);

    const ordinary = await cli(h, "filters", "test", "--ip", "192.0.2.1", "--mail", "x@example.org");
    assert.deepEqual(ordinary.out.length, 1, ordinary.out.join("\n"));
    assert.match(ordinary.out[0]!, /^allowed/);
  });
});

test("filters test does not mention disposable domains when blockDisposable is off", async () => {
  await withHarness({}, async (h) => {
    const { code, out, err } = await cli(h, "filters", "test", "--ip", "192.0.2.1", "--mail", "x@mailinator.com");
    assert.equal(code, 0, err.join("\n"));
    assert.equal(out.length, 1, out.join("\n"));
    assert.match(out[0]!, /^allowed/);
  });
});
