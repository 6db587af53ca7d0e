import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import { canonicalMail, uts46Domain } from "../../src/domain/mail-address.ts";
import { usernameSkeleton } from "../../src/domain/username.ts";
import {
  postRegistrationJson,
  registerAndVerify,
  registration,
  storeSnapshot,
  withHarness,
  type Harness,
} from "../helpers/harness.ts";
import { cli, client, issueInvite, PASSWORD } from "../helpers/invites.ts";

// DESIGN §7 "Identities": one canonical form of a mail address is filtered, hashed and mailed
// (issue 10, item 3), and names are compared by their UTS #39 confusable skeleton (item 8).

type Overrides = Parameters<typeof withHarness>[0];

/** A harness whose mail goes to a real SMTP server on loopback. */
function withSmtpHarness(overrides: Overrides, body: (h: Harness) => Promise<void>): Promise<void> {
  return withHarness(overrides, body, { smtp: true });
}

/** The RCPT TO of every mail the sink took, after the outbox has sent what is due. */
async function recipients(h: Harness): Promise<string[]> {
  await h.outbox.drain();
  return h.smtp.sink.received.flatMap((m) => m.to);
}

/**
 * The To: header of every mail the sink took, as gatehouse wrote it. smtp-server hands RCPT TO
 * domains over in their Unicode form (it runs punycode.toUnicode), so this is where the ASCII form shows.
 */
async function toHeaders(h: Harness): Promise<string[]> {
  await h.outbox.drain();
  return h.smtp.sink.received.map((m) => /^To: (.*)$/m.exec(m.raw.toString("utf8"))?.[1] ?? "");
}

/** `gatehouse filters test` on the harness's config: its output lines. */
async function filtersTest(h: Harness, mail: string): Promise<string[]> {
  const res = await cli(h, "filters", "test", "--ip", "192.0.2.1", "--mail", mail);
  assert.equal(res.code, 0, res.err.join("\n"));
  return res.out;
}

describe("mail addresses: one canonical form is filtered, hashed and mailed", () => {
  test("an address ending in an ideographic full stop is caught by a filter on its domain, over HTTP and in filters test", async () => {
    await withSmtpHarness({ register: { filteredMails: ["@spam\\.example$"] } }, async (h) => {
      const before = await storeSnapshot(h);
      const res = await postRegistrationJson(h, registration({ mail: "victim@spam.example\u3002" }));
      assert.equal(res.status, 403, res.text);
      assert.equal(res.body.error, "MAIL_FILTERED");
      assert.deepEqual(await storeSnapshot(h), before, "nothing stored");
      assert.deepEqual(await recipients(h), [], "nothing mailed");

      const out = await filtersTest(h, "victim@spam.example\u3002");
      assert.ok(out.includes('refused: mail matches filter "@spam\\\\.example$" (403)'), out.join("\n"));
      assert.ok(out.includes("note: mail is checked as victim@spam.example"), out.join("\n"));
    });
  });

  test("without a filter, an address ending in an ideographic full stop is mailed to the plain domain, without the trailing dot", async () => {
    await withSmtpHarness({}, async (h) => {
      const res = await postRegistrationJson(h, registration({ mail: " Victim@Spam.Example\u3002 " }));
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(await recipients(h), ["victim@spam.example"]);
      assert.deepEqual(await toHeaders(h), ["victim@spam.example"]);
      const again = await postRegistrationJson(h, registration({ mail: "victim@spam.example." }));
      assert.equal(again.status, 409, "the same mailbox with a trailing dot");
      assert.equal(again.body.error, "MAIL_TAKEN");
    });
  });

  for (const [first, second] of [
    ["v@b\u00fccher.example", "v@xn--bcher-kva.example"],
    ["v@xn--bcher-kva.example", "V@B\u00dcCHER.example"],
  ] as const) {
    test(`${first} and then ${second} are one mailbox: one registration, mailed to the ASCII form`, async () => {
      await withSmtpHarness({}, async (h) => {
        const res = await postRegistrationJson(h, registration({ username: "first", mail: first }));
        assert.equal(res.status, 200, res.text);
        const dup = await postRegistrationJson(h, registration({ username: "second", mail: second }));
        assert.equal(dup.status, 409, dup.text);
        assert.equal(dup.body.error, "MAIL_TAKEN");
        assert.deepEqual((await h.ctx.store.listPending(h.clock.now())).map((p) => p.username), ["first"]);
        assert.deepEqual(await toHeaders(h), ["v@xn--bcher-kva.example"]);
        assert.deepEqual(h.smtp.sink.received.flatMap((m) => m.to), ["v@b\u00fccher.example"], "one mail, to that mailbox");
      });
    });
  }

  test("a filter written for either spelling of an internationalized domain refuses both spellings, over HTTP and in filters test", async () => {
    for (const filter of ["@b\u00fccher\\.example$", "@xn--bcher-kva\\.example$", "B\u00dcCHER"]) {
      await withHarness({ register: { filteredMails: [filter] } }, async (h) => {
        for (const mail of ["v@b\u00fccher.example", "v@xn--bcher-kva.example", "v@B\u00fcCHER.example"]) {
          const res = await postRegistrationJson(h, registration({ mail }));
          assert.equal(res.status, 403, `${mail} against ${filter}: ${res.text}`);
          assert.equal(res.body.error, "MAIL_FILTERED");
          const out = await filtersTest(h, mail);
          assert.ok(out.includes(`refused: mail matches filter ${JSON.stringify(filter)} (403)`), `${mail} against ${filter}: ${out.join("\n")}`);
        }
        assert.deepEqual((await storeSnapshot(h)).pending, []);
        const other = await postRegistrationJson(h, registration({ mail: "v@buecher.example" }));
        assert.equal(other.status, 200, "another domain passes");
      });
    }
  });

  test("an address whose domain fails UTS #46 is a 400 and stores nothing; filters test says so too", async () => {
    await withHarness({}, async (h) => {
      const before = await storeSnapshot(h);
      // Invalid punycode, a joiner out of context, a label mixing right-to-left and left-to-right.
      for (const mail of ["v@xn--a.example", "v@ex\u200dample.org", "v@\u05d0b.example"]) {
        const res = await postRegistrationJson(h, registration({ mail }));
        assert.equal(res.status, 400, `${JSON.stringify(mail)}: ${res.text}`);
        assert.equal(res.body.error, "MALFORMED_REQUEST");
        assert.deepEqual(await filtersTest(h, mail), [`refused: ${JSON.stringify(mail)} is not a mail address (400)`]);
      }
      assert.deepEqual(await storeSnapshot(h), before);
    });
  });

  test("the local part is lower-cased like the domain: Alice@Example.org is mailed as alice@example.org and is the mailbox of alice@example.org", async () => {
    await withSmtpHarness({}, async (h) => {
      assert.equal((await postRegistrationJson(h, registration({ mail: "Alice@Example.ORG" }))).status, 200);
      const dup = await postRegistrationJson(h, registration({ mail: "alice@example.org" }));
      assert.equal(dup.status, 409);
      assert.deepEqual(await recipients(h), ["alice@example.org"]);
      assert.deepEqual(await toHeaders(h), ["alice@example.org"]);
    });
  });

  test("mail hashes stored by earlier versions (trimmed, lower-cased) still hold their plain ASCII address", async () => {
    await withHarness({}, async (h) => {
      // What every earlier version stored: HMAC-SHA256 over mail.trim().toLowerCase().
      const legacyHash = createHmac("sha256", h.ctx.secret).update("carol.smith+news@example.org").digest("hex");
      const now = h.clock.now();
      await h.ctx.store.insertPending(
        { username: "carol", skeleton: usernameSkeleton("carol"), passwordHash: "x", mailHash: legacyHash, tokenHash: "t", ip: "192.0.2.9", createdAt: now, expiresAt: now + 60_000 },
        [],
      );
      const res = await postRegistrationJson(h, registration({ mail: " Carol.Smith+News@EXAMPLE.org " }));
      assert.equal(res.status, 409, res.text);
      assert.equal(res.body.error, "MAIL_TAKEN");
    });
  });

  test("the shortcut for plain letter-digit-hyphen domains gives what UTS #46 (tr46) gives, for any ASCII domain", () => {
    const label = fc.stringMatching(/^[a-zA-Z0-9-]{0,66}$/);
    fc.assert(
      fc.property(
        fc.oneof(fc.domain(), fc.array(label, { minLength: 1, maxLength: 6 }).map((labels) => labels.join(".")), fc.domain().map((d) => `${d}.`)),
        (domain) => {
          const mail = canonicalMail(`x@${domain}`);
          assert.equal(mail === null ? null : mail.slice(2), uts46Domain(domain), domain);
        },
      ),
      { numRuns: 3000 },
    );
    assert.equal(canonicalMail(`x@${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`)?.length, 255, "253 characters is the limit");
    assert.equal(canonicalMail(`x@${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(62)}`), null);
  });

  test("for any plain ASCII address the canonical form is the old trim().toLowerCase()", () => {
    fc.assert(
      fc.property(
        fc.emailAddress().filter((mail) => !/(^|[@.])xn--/i.test(mail)),
        fc.constantFrom("", " ", "\t"),
        fc.boolean(),
        (mail, pad, upper) => {
          const typed = `${pad}${upper ? mail.toUpperCase() : mail}${pad}`;
          assert.equal(canonicalMail(typed), typed.trim().toLowerCase());
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("look-alike names: compared by their UTS #39 confusable skeleton", () => {
  test("look-alikes of reserved names are reserved: Cyrillic а, dotless ı, ADMİN, Cyrillic о, full-width letters", async () => {
    await withHarness({}, async (h) => {
      const before = await storeSnapshot(h);
      for (const username of ["\u0430dmin", "adm\u0131n", "ADM\u0130N", "r\u043e\u043et", "\uff21\uff24\uff2d\uff29\uff2e", "Admin"]) {
        const res = await postRegistrationJson(h, registration({ username }));
        assert.equal(res.status, 403, `${JSON.stringify(username)}: ${res.text}`);
        assert.equal(res.body.error, "USERNAME_RESERVED", username);
      }
      assert.deepEqual(await storeSnapshot(h), before, "nothing stored");
      assert.equal((await postRegistrationJson(h, registration({ username: "admiral" }))).status, 200, "a name that only starts alike is free");
    });
  });

  test("a look-alike of an account is refused (409) by registration, the invite API and the invite page; the invite stays usable", async () => {
    await withHarness({}, async (h) => {
      assert.equal(await registerAndVerify(h, { username: "paypal" }), "paypal");
      const lookalike = "\u0440\u0430\u0443\u0440\u0430l"; // Cyrillic р, а, у

      const res = await postRegistrationJson(h, registration({ username: lookalike }));
      assert.equal(res.status, 409, res.text);
      assert.equal(res.body.error, "USERNAME_TAKEN");
      assert.match(res.body.message, /looks like/);

      const { id } = await issueInvite(h);
      const api = await client(h).post(`/api/invite/${id}`).set("Accept", "application/json").send({ name: lookalike, password: PASSWORD });
      assert.equal(api.status, 409, api.text);
      const page = await client(h).post(`/invite/${id}`).type("form").send({ username: lookalike, password: PASSWORD });
      assert.equal(page.status, 409, page.text);
      assert.match(page.text, /looks too much like one that is already taken/);

      assert.deepEqual((await h.ctx.store.listAccounts()).map((a) => a.username), ["paypal"]);
      assert.deepEqual((await storeSnapshot(h)).pending, []);
      const ok = await client(h).post(`/api/invite/${id}`).set("Accept", "application/json").send({ name: "paypal-fan", password: PASSWORD });
      assert.equal(ok.status, 204, "the invite is still usable");
    });
  });

  test("a look-alike of a pending registration is answered as that name would be: 401 to a registration, 409 to an invite", async () => {
    await withHarness({}, async (h) => {
      assert.equal((await postRegistrationJson(h, registration({ username: "alice" }))).status, 200);
      const res = await postRegistrationJson(h, registration({ username: "\u0430lice" }));
      assert.equal(res.status, 401, res.text);
      assert.equal(res.body.error, "USERNAME_PENDING");
      const { id } = await issueInvite(h);
      const api = await client(h).post(`/api/invite/${id}`).set("Accept", "application/json").send({ name: "\u0430lice", password: PASSWORD });
      assert.equal(api.status, 409, api.text);

      // Once the pending registration has expired, the look-alike is free.
      h.clock.advance(h.config.register.pendingTtlSeconds * 1000);
      const later = await postRegistrationJson(h, registration({ username: "\u0430lice" }));
      assert.equal(later.status, 200, later.text);
    });
  });
});
