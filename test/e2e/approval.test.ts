import { test } from "node:test";
import assert from "node:assert/strict";
import { simpleParser, type ParsedMail } from "mailparser";
import type { Config } from "../../src/config.ts";
import { sweep } from "../../src/service/sweeper.ts";
import { HTTP_TARGET_SECRET, startHttpTarget } from "../helpers/http-target.ts";
import { cli } from "../helpers/cli.ts";
import {
  createHarness, metricSample, postRegistration, postRegistrationJson, registration, storeSnapshot, verifyToken, type Harness, type RegistrationFields,
} from "../helpers/harness.ts";
import { client, issueInvite, PASSWORD } from "../helpers/invites.ts";
import { BROWSER_SKIP, browserTestsEnabled, launchChromium, openPage, startBrowserService } from "../helpers/browser.ts";
import { Lifetimes, waitFor } from "../helpers/lifetimes.ts";
import { postRegistrationTo } from "../helpers/service.ts";
import { startSmtpSink } from "../helpers/smtp.ts";
import { SECRET as WEBHOOK_SECRET, startReceiver as startWebhookReceiver } from "../helpers/webhook-receiver.ts";

// DESIGN §11 "Approval", end to end over HTTP with a real SMTP sink: a verified registration (or
// an accepted invite) waits for a moderator, who decides from the CLI or from the mailed links.

const MODERATOR = "mods@moderation.example";
const DAY = 24 * 3600 * 1000;

type Overrides = Parameters<typeof createHarness>[0];

/** A harness with manual approval and a real SMTP sink, on the wall clock (the CLI and the receivers use it). */
async function approvalHarness(overrides: Overrides = {}): Promise<Harness> {
  const base = { register: { approval: "manual", moderators: [MODERATOR] } } as Overrides;
  const h = await createHarness({ ...base, ...overrides, register: { ...base!.register, ...overrides!.register } } as Overrides, { smtp: true });
  h.clock.t = Date.now();
  return h;
}

async function withApproval(overrides: Overrides, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = await approvalHarness(overrides);
  try {
    await body(h);
  } finally {
    await h.close();
  }
}

/** Every mail the sink received for `address`, parsed, oldest first (after the outbox sent what is due). */
async function mailsTo(h: Harness, address: string): Promise<ParsedMail[]> {
  // What the CLI queued is due at the wall clock's time, which has moved on since the harness clock was set.
  h.clock.t = Math.max(h.clock.t, Date.now());
  await h.outbox.drain();
  const all = h.smtp.sink.received.filter((m) => m.to.includes(address));
  return Promise.all(all.map((m) => simpleParser(m.raw)));
}

async function lastMailTo(h: Harness, address: string): Promise<ParsedMail> {
  const mails = await mailsTo(h, address);
  assert.ok(mails.length > 0, `a mail to ${address}`);
  return mails[mails.length - 1]!;
}

/** The approve and reject links of the newest moderator mail. */
async function moderatorLinks(h: Harness): Promise<{ approve: string; reject: string; mail: ParsedMail }> {
  const mail = await lastMailTo(h, MODERATOR);
  const approve = /^Approve: (\S+)$/m.exec(mail.text ?? "")?.[1];
  const reject = /^Reject: +(\S+)$/m.exec(mail.text ?? "")?.[1];
  assert.ok(approve && reject, `links in the moderator mail:\n${mail.text}`);
  return { approve: new URL(approve).pathname, reject: new URL(reject).pathname, mail };
}

/** Registers and verifies `fields` (with an optional reason); the registration then awaits approval. */
async function registerAwaiting(h: Harness, fields: Partial<RegistrationFields> & { reason?: string; lang?: string } = {}): Promise<RegistrationFields> {
  const { reason, lang, ...rest } = fields;
  const reg = { ...registration(rest), ...(reason === undefined ? {} : { reason }), ...(lang === undefined ? {} : { lang }) };
  const res = await postRegistration(h, reg);
  assert.equal(res.status, 200, res.text);
  const done = await verifyToken(h, res.text);
  assert.equal(done.status, 200, done.text);
  assert.equal(done.body.awaitingApproval, true, "the verification answers that it awaits approval");
  return reg;
}

async function login(h: Harness, name: string, password = PASSWORD): Promise<number> {
  return (await client(h).post("/api/auth/login").send({ name, password })).status;
}

test("a verified registration waits for approval: the moderators get its name and escaped reason, name and address answer 409, and it cannot log in", async () => {
  await withApproval({}, async (h) => {
    const reason = "I run the <b>chess</b> club\u0007\nand \u202eevil\u202c want in";
    const reg = registration({ username: "Wanda", mail: "wanda@example.org" });
    const res = await postRegistration(h, { ...reg, reason });
    assert.equal(res.status, 200, res.text);
    // The person clicks the mailed link: the page says it waits for a moderator.
    const page = await h.http.post(`/register_account/verify/${res.text}`);
    assert.equal(page.status, 200);
    assert.match(page.text, /waits for a moderator/);
    assert.equal((await verifyToken(h, res.text)).body.awaitingApproval, true, "a second completion says the same");
    const verifiedAt = h.clock.now();

    const { mail } = await moderatorLinks(h);
    assert.equal(mail.subject, "Registration waiting for approval at gatehouse.test: wanda");
    assert.match(mail.text ?? "", /^Their reason: I run the <b>chess<\/b> club and evil want in$/m, "control characters and bidi overrides are gone");
    assert.match(String(mail.html), /I run the &lt;b&gt;chess&lt;\/b&gt; club/, "the reason is escaped in the HTML part");
    assert.doesNotMatch(String(mail.html), /<b>chess/);

    const again = await postRegistrationJson(h, registration({ username: "wanda" }));
    assert.equal(again.status, 409, again.text);
    assert.match(again.body.message, /awaiting approval/);
    assert.equal((await postRegistrationJson(h, registration({ mail: "wanda@example.org" }))).status, 409, "the address is held too");
    assert.equal(await login(h, "wanda", reg.password), 401, "no login while waiting");
    assert.deepEqual(await h.ctx.store.listAccounts(), []);

    const listed = await cli(h, "pending", "list");
    assert.equal(listed.code, 0, listed.err.join("\n"));
    assert.equal(listed.out[0], "NAME\tIP\tCREATED\tEXPIRES\tMAIL\tSTATE\tREASON");
    const row = listed.out[1]!.split("\t");
    assert.deepEqual([row[0], row[3], row[5], row[6]], [
      "wanda", new Date(verifiedAt + 1209600 * 1000).toISOString(), "approval", "I run the <b>chess</b> club and evil want in",
    ]);
    const metrics = (await h.http.get("/metrics")).text;
    assert.equal(metricSample(metrics, "gatehouse_approvals_waiting"), 1);
  });
});

test("users approve makes the account: the person is mailed they can sign in, logs in, and user-approved then user-registered are posted", async () => {
  const receiver = await startWebhookReceiver();
  try {
    await withApproval({ events: { webhook: { url: receiver.url, secret: WEBHOOK_SECRET } } }, async (h) => {
      const reg = await registerAwaiting(h, { username: "ulla", mail: "ulla@example.org", reason: "friend of bob" });
      await h.outbox.drain();
      assert.deepEqual(receiver.accepted(), [], "no event while waiting");

      const approved = await cli(h, "users", "approve", "Ulla");
      assert.equal(approved.code, 0, approved.err.join("\n"));
      assert.deepEqual(approved.out, ["approved ulla"]);
      const mail = await lastMailTo(h, "ulla@example.org");
      assert.equal(mail.subject, "Your account at gatehouse.test is approved");
      assert.match(mail.text ?? "", /You can sign in with it now/);
      assert.equal(await login(h, "ulla", reg.password), 204);
      assert.deepEqual(receiver.accepted().map((e) => [e.type, e.data["username"]]), [["user-approved", "ulla"], ["user-registered", "ulla"]]);

      const twice = await cli(h, "users", "approve", "ulla");
      assert.equal(twice.code, 1);
      assert.match(twice.err.join("\n"), /no registration named "ulla" is waiting for approval/);
      assert.equal((await cli(h, "pending", "list")).out.length, 1, "only the header is left");
    });
  } finally {
    await receiver.close();
  }
});

test("users reject --reason removes the registration and mails the person the reason; name and address are free again", async () => {
  await withApproval({}, async (h) => {
    await registerAwaiting(h, { username: "rita", mail: "rita@example.org" });
    const rejected = await cli(h, "users", "reject", "rita", "--reason", "We only take club members <sorry>");
    assert.equal(rejected.code, 0, rejected.err.join("\n"));
    assert.deepEqual(rejected.out, ["rejected rita"]);
    const mail = await lastMailTo(h, "rita@example.org");
    assert.equal(mail.subject, "Your registration at gatehouse.test was not approved");
    assert.match(mail.text ?? "", /^Their reason: We only take club members <sorry>$/m);
    assert.match(String(mail.html), /We only take club members &lt;sorry&gt;/);
    assert.equal(await login(h, "rita"), 401);
    const again = await postRegistration(h, registration({ username: "rita", mail: "rita@example.org" }));
    assert.equal(again.status, 200, "name and address are free again");

    const tooLong = await cli(h, "users", "reject", "rita", "--reason", "x".repeat(501));
    assert.equal(tooLong.code, 1);
    assert.match(tooLong.err.join("\n"), /at most 500 characters/);
  });
});

test("the moderator links: GET changes nothing, POST decides once; reject with a reason mails it and posts user-rejected; unknown links are 404", async () => {
  const hooks = await startWebhookReceiver();
  try {
    await withApproval({ events: { webhook: { url: hooks.url, secret: WEBHOOK_SECRET } } }, async (h) => {
      await registerAwaiting(h, { username: "lena", mail: "lena@example.org", reason: "<script>alert(1)</script>" });
      const links = await moderatorLinks(h);
      const shown = await h.http.get(links.reject);
      assert.equal(shown.status, 200);
      assert.match(shown.text, /<h1>Reject lena\?<\/h1>/);
      assert.match(shown.text, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/);
      assert.doesNotMatch(shown.text, /<script>/);
      assert.equal((await h.http.get(links.approve)).status, 200);
      assert.equal((await h.ctx.store.listPending(h.clock.now()))[0]?.state, "awaiting", "opening the links decided nothing");

      const decided = await h.http.post(links.reject).type("form").send({ reason: "Not now." });
      assert.equal(decided.status, 200, decided.text);
      assert.match(decided.text, /is rejected/);
      assert.match((await lastMailTo(h, "lena@example.org")).text ?? "", /^Their reason: Not now\.$/m);
      for (const link of [links.reject, links.approve]) {
        assert.equal((await h.http.post(link).type("form").send({})).status, 404, `${link} works once`);
        assert.equal((await h.http.get(link)).status, 404);
      }
      assert.equal((await h.http.get("/register_account/approval/not-a-token/approve")).status, 404);
      assert.equal((await h.http.post(`/register_account/approval/${"a".repeat(300)}/approve`)).status, 404);
      const metrics = (await h.http.get("/metrics")).text;
      assert.equal(metricSample(metrics, 'gatehouse_approvals_total{outcome="rejected"}'), 1);
      await h.outbox.drain();
      assert.deepEqual(hooks.accepted().map((e) => [e.type, e.data]), [["user-rejected", { username: "lena", reason: "Not now.", decidedBy: "link" }]]);
    });
  } finally {
    await hooks.close();
  }
});

test("a reason over 500 characters or not a string is refused with 400 and stores nothing", async () => {
  await withApproval({}, async (h) => {
    const before = await storeSnapshot(h);
    for (const reason of ["y".repeat(501), 42, ["a"]]) {
      const res = await postRegistrationJson(h, { ...registration(), reason });
      assert.equal(res.status, 400, `${JSON.stringify(reason).slice(0, 20)}: ${res.text}`);
    }
    assert.deepEqual(await storeSnapshot(h), before);
    const exactly = await postRegistration(h, { ...registration(), reason: "é".repeat(500) });
    assert.equal(exactly.status, 200, "500 characters are fine, whatever their bytes");
  });
});

test("a registration nobody decides expires after approvalTtlSeconds: the sweeper removes it, mails the person, and frees the name", async () => {
  await withApproval({ register: { approvalTtlSeconds: 3 * 24 * 3600 } as Config["register"] }, async (h) => {
    await registerAwaiting(h, { username: "edda", mail: "edda@example.org" });
    const links = await moderatorLinks(h);
    h.clock.advance(3 * DAY - 1000);
    await sweep(h.ctx);
    assert.equal((await h.ctx.store.listPending(h.clock.now())).length, 1, "still waiting a second before the end");
    h.clock.advance(1000);
    assert.equal((await h.http.get(links.approve)).status, 404, "the link ends with the wait");
    await sweep(h.ctx);
    const mail = await lastMailTo(h, "edda@example.org");
    assert.equal(mail.subject, "Your registration at gatehouse.test has expired");
    assert.equal((await h.ctx.store.listPending(h.clock.now())).length, 0);
    const metrics = (await h.http.get("/metrics")).text;
    assert.equal(metricSample(metrics, 'gatehouse_approvals_total{outcome="expired"}'), 1);
    assert.equal((await cli(h, "users", "approve", "edda")).code, 1);
    assert.equal((await postRegistration(h, registration({ username: "edda", mail: "edda@example.org" }))).status, 200);
  });
});

test("with an HTTP account target nothing is provisioned while waiting; approval by link provisions it with the password, then user-registered", async () => {
  const target = await startHttpTarget();
  const hooks = await startWebhookReceiver();
  try {
    await withApproval({
      accounts: { provision: [{ type: "http", name: "site", url: `${target.url()}/accounts`, secret: HTTP_TARGET_SECRET, includePassword: true }] },
      events: { webhook: { url: hooks.url, secret: WEBHOOK_SECRET } },
    } as Overrides, async (h) => {
      const reg = await registerAwaiting(h, { username: "pia", mail: "pia@example.org", password: PASSWORD });
      await h.outbox.drain();
      assert.equal(target.accounts.has("pia"), false, "not provisioned before approval");
      const stored = await h.ctx.store.listPending(h.clock.now());
      assert.equal(stored[0]?.state, "awaiting");

      const { approve } = await moderatorLinks(h);
      assert.equal((await h.http.post(approve).type("form").send({})).status, 200);
      await waitFor(async () => {
        await h.outbox.drain();
        return target.accounts.get("pia") === reg.password;
      }, { what: "the account on the target" });
      await h.outbox.drain();
      assert.deepEqual(hooks.accepted().map((e) => e.type), ["user-approved", "user-registered"]);
      const users = await cli(h, "users", "list");
      assert.match(users.out.join("\n"), /^pia\t.*\tsite=ready$/m);
    });
  } finally {
    await hooks.close();
    await target.stop();
  }
});

test("invites.requireApproval: the invite page asks for a reason, accepting waits without a session, and approval makes the account", async () => {
  await withApproval({ invites: { requireApproval: true }, register: { approval: "none" } } as Overrides, async (h) => {
    const { id } = await issueInvite(h, "Alice");
    const form = await h.http.get(`/invite/${id}`);
    assert.match(form.text, /<textarea id="reason" name="reason"/);
    const accepted = await client(h).post(`/invite/${id}`).type("form").send({ username: "Ivo", password: PASSWORD, reason: "Alice's brother" });
    assert.equal(accepted.status, 200, accepted.text);
    assert.match(accepted.text, /waits for a moderator/);
    assert.equal(accepted.headers["set-cookie"], undefined, "no session before approval");
    assert.equal(await login(h, "ivo"), 401);
    const { mail } = await moderatorLinks(h);
    assert.match(mail.text ?? "", /^Invited by: Alice's key$|^Invited by: Alice$/m);
    assert.match(mail.text ?? "", /^Their reason: Alice's brother$/m);
    assert.equal((await h.http.get(`/invite/${id}`)).status, 410, "the invite is used");

    assert.equal((await cli(h, "users", "approve", "ivo")).code, 0);
    assert.equal(await login(h, "ivo"), 204);
    // Registrations do not wait here: register.approval is "none".
    const res = await postRegistration(h, registration({ username: "nina" }));
    assert.equal((await verifyToken(h, res.text)).body.awaitingApproval, undefined);
  });
});

test("invites.requireApproval over the invitation API: 202 awaiting approval, no cookie", async () => {
  await withApproval({ invites: { requireApproval: true } } as Overrides, async (h) => {
    const { id } = await issueInvite(h);
    const res = await client(h).post(`/api/invite/${id}`).send({ name: "olaf", password: PASSWORD, reason: "hi" });
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.body, { name: "olaf", status: "awaiting-approval" });
    assert.equal(res.headers["set-cookie"], undefined);
    assert.equal((await client(h).post(`/api/invite/${id}`).send({ name: "olga", password: PASSWORD, reason: 7 })).status, 400);
  });
});

if (!browserTestsEnabled()) {
  test("approval in a browser (Chromium): the moderator mail's link", { skip: BROWSER_SKIP }, () => {});
} else {
  test("in Chromium, a moderator opens the approve link from the mail, sees the name and reason, and clicks approve", async () => {
    const lifetimes = new Lifetimes();
    try {
      const sink = lifetimes.own(await startSmtpSink(), (s) => s.close());
      const svc = lifetimes.own(
        await startBrowserService({
          register: { approval: "manual", moderators: [MODERATOR] } as Config["register"],
          mail: { transport: `smtp://127.0.0.1:${sink.port}/?ignoreTLS=true` } as Config["mail"],
        }),
        (s) => s.close(),
      );
      const browser = lifetimes.own(await launchChromium(), (b) => b.close());
      const fields = registration({ username: "Bruno", mail: "bruno@example.org" });
      const answer = await postRegistrationTo(svc.url, { ...fields, reason: "Runs the <i>bakery</i>" });
      assert.equal(answer.status, 200, answer.text);
      assert.equal((await fetch(`${svc.url}/register_account/verify/${answer.text}`, { method: "POST" })).status, 200);
      await sink.waitForMail(2, 10_000);
      const toModerators = await Promise.all(sink.received.filter((m) => m.to.includes(MODERATOR)).map((m) => simpleParser(m.raw)));
      const link = /^Approve: (\S+)$/m.exec(toModerators[0]?.text ?? "")?.[1] ?? "";
      assert.ok(link.startsWith(`${svc.url}/register_account/approval/`), `the approve link: ${link}`);

      const { context, page, cspViolations } = await openPage(browser);
      lifetimes.own(context, (c) => c.close());
      const shown = await page.goto(link);
      assert.equal(shown?.status(), 200);
      assert.equal(await page.locator("#username").textContent(), "bruno");
      assert.equal(await page.locator("#reason").textContent(), "Runs the <i>bakery</i>", "the reason shows as text, not markup");
      assert.equal((await svc.service.ctx.store.listAccounts()).length, 0, "opening the link changes nothing");
      const [done] = await Promise.all([page.waitForNavigation(), page.click("#decide")]);
      assert.equal(done?.status(), 200);
      assert.equal(await page.locator("h1").textContent(), "Approved");
      assert.deepEqual(cspViolations, []);
      assert.deepEqual((await svc.service.ctx.store.listAccounts()).map((a) => a.username), ["bruno"]);
      await sink.waitForMail(3, 10_000);
      const toBruno = await Promise.all(sink.received.filter((m) => m.to.includes("bruno@example.org")).map((m) => simpleParser(m.raw)));
      assert.deepEqual(toBruno.map((m) => m.subject), [`Confirm your new account at ${new URL(svc.url).host}`, `Your account at ${new URL(svc.url).host} is approved`]);

      const reused = await page.goto(link);
      assert.equal(reused?.status(), 404, "the link works once");
    } finally {
      await lifetimes.closeAll();
    }
  });
}

test("the outcome is mailed in the language the registration was made in; moderators read the default language", async () => {
  await withApproval({ languages: ["en", "de"] } as Overrides, async (h) => {
    await registerAwaiting(h, { username: "greta", mail: "greta@example.org", lang: "de-AT" });
    const { mail: toModerators } = await moderatorLinks(h);
    assert.equal(toModerators.subject, "Registration waiting for approval at gatehouse.test: greta");
    assert.equal((await cli(h, "users", "reject", "greta", "--reason", "Kein Platz mehr.")).code, 0);
    const mail = await lastMailTo(h, "greta@example.org");
    assert.equal(mail.subject, "Ihre Registrierung bei gatehouse.test wurde nicht freigegeben");
    assert.match(mail.text ?? "", /^Begründung: Kein Platz mehr\.$/m);
  });
});
