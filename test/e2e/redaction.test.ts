import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AUTH_TOKEN, createHarness, encode, postRegistration, registration } from "../helpers/harness.ts";
import { client, createKey, identityCookie, tokenOf } from "../helpers/invites.ts";

// DESIGN.md §7: no password, token, secret or full e-mail address is ever logged — not at debug
// level either, not for a refusal, and not when a secret arrives where it does not belong.

const BASE = "/register_account/";
const WEBHOOK_SECRET = "webhook-secret-for-redaction-0123";

/** Every secret the flows below handle, by what it is, so a failure says which one leaked. */
class Secrets {
  readonly all = new Map<string, string>();
  add(label: string, value: string | undefined | null): string {
    assert.ok(value && value.length >= 5, `${label} is a real value (${JSON.stringify(value)})`);
    this.all.set(`${label} (${this.all.size})`, value);
    return value;
  }
}

async function startHookSink(): Promise<{ server: Server; url: string; bodies: string[] }> {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      bodies.push(Buffer.concat(chunks).toString("utf8"));
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies };
}

test("a run of every flow at debug level logs no password, token, key secret, session or full mail address", async () => {
  const hook = await startHookSink();
  const h = await createHarness({
    events: { webhook: { url: hook.url, secret: WEBHOOK_SECRET } },
    register: { filteredMails: ["banned\\.example$"], blockDisposable: true, blacklist: ["203.0.113.0/24"] },
  }, { smtp: true });
  h.own(hook.server, async (server) => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const secrets = new Secrets();
  try {
    assert.equal(h.ctx.log.level, "debug", "the harness logs at debug level");
    secrets.add("auth_token", AUTH_TOKEN);
    secrets.add("webhook secret", WEBHOOK_SECRET);
    secrets.add("service secret", h.ctx.secret);

    // A registration that succeeds, and its verification by the mailed link.
    const fields = registration({ username: "Redact1", mail: "Redact.Me+tag@Example.org", password: "s3cret-Pässword-1" });
    secrets.add("password", fields.password);
    secrets.add("mail", fields.mail);
    secrets.add("mail, normalized", fields.mail.toLowerCase());
    const ok = await postRegistration(h, fields);
    assert.equal(ok.status, 200, ok.text);
    const verifyToken = secrets.add("verification token", ok.text);

    // Refusals, each carrying secrets of its own.
    const refusals: [string, unknown, number][] = [
      ["a wrong auth_token", registration({ auth_token: "wrong-auth-token-xyz", mail: "wrongtoken@example.org", password: "refused-password-1" }), 401],
      ["a filtered mail", registration({ mail: "filtered.person@banned.example", password: "refused-password-2" }), 403],
      ["a disposable mail", registration({ mail: "throwaway.person@sub.mailinator.com", password: "refused-password-3" }), 403],
      ["a blacklisted ip", registration({ ip: "203.0.113.5", mail: "blacklisted.person@example.org", password: "refused-password-4" }), 403],
      ["a short password", registration({ mail: "short.person@example.org", password: "short1" }), 400],
      ["a bad username", registration({ username: "two words", mail: "badname.person@example.org", password: "refused-password-5" }), 406],
      ["a pending username", registration({ username: "redact1", mail: "pendingname.person@example.org", password: "refused-password-6" }), 401],
      ["a held mail", registration({ mail: "REDACT.ME+TAG@example.org", password: "refused-password-7" }), 409],
      ["a malformed ip", registration({ ip: "not-an-ip", mail: "badip.person@example.org", password: "refused-password-8" }), 400],
    ];
    for (const [label, body, status] of refusals) {
      const b = body as Record<string, string>;
      for (const key of ["password", "mail", "auth_token"] as const) if (b[key] !== AUTH_TOKEN) secrets.add(`${label}: ${key}`, b[key]);
      const res = await postRegistration(h, body);
      assert.equal(res.status, status, `${label}: ${res.text}`);
    }
    // A body that is not a registration at all, with a password inside.
    const malformed = await h.http.post(BASE).set("Content-Type", "application/encoded").send(encode('{"password":"in-a-broken-body-1", "mail": "broken.body@example.org"'));
    assert.equal(malformed.status, 400);
    secrets.add("password in a malformed body", "in-a-broken-body-1");
    secrets.add("mail in a malformed body", "broken.body@example.org");

    // The verification mail goes out over SMTP; the account is made by the link.
    await h.outbox.drain();
    assert.equal(h.smtp.sink.received.length, 1, "the verification mail was sent");
    assert.equal((await client(h).get(`${BASE}verify/${verifyToken}`)).status, 200);
    assert.equal((await client(h).post(`${BASE}verify/${verifyToken}`)).status, 200);
    assert.equal((await client(h).post(`${BASE}verify/${verifyToken}x`)).status, 404);
    const form = await client(h).post(`${BASE}verify/`).type("form").send(`uuid=${verifyToken}`);
    assert.equal(form.status, 200, "a second use shows the success page");
    await h.outbox.drain();
    assert.equal(hook.bodies.length, 1, "the user-registered event was delivered");

    // An API key, invites made with it both ways, and a wrong key.
    const key = await createKey(h, "redaction key");
    secrets.add("API key secret", key.secret);
    secrets.add("API key", key.key);
    const viaApi = await client(h).post("/api/invite").set("Authorization", `Bearer ${key.key}`);
    assert.equal(viaApi.status, 200, viaApi.text);
    const apiInvite = secrets.add("invite token (api)", viaApi.body.id as string);
    const viaModule = await client(h).get(`/invites_api?key=${encodeURIComponent(key.key)}&uses=2`);
    assert.equal(viaModule.status, 201, viaModule.text);
    const moduleInvite = secrets.add("invite token (mod_invites_api)", tokenOf(String(viaModule.headers["location"])));
    const wrongKey = `${key.id}/${key.secret.slice(0, -2)}zz`;
    secrets.add("wrong API key", wrongKey);
    assert.equal((await client(h).get(`/invites_api?key=${encodeURIComponent(wrongKey)}`)).status, 403);
    assert.equal((await client(h).post("/invites_api").set("Authorization", `Bearer ${wrongKey}`)).status, 403);

    // Accepting: through the API and through the page, with a refusal first.
    assert.equal((await client(h).get(`/api/invite/${apiInvite}`)).status, 200);
    const short = await client(h).post(`/api/invite/${apiInvite}`).send({ name: "guest1", password: "tiny1" });
    assert.equal(short.status, 400);
    secrets.add("short invite password", "tiny1");
    const invitePassword = secrets.add("invite password (api)", "invited-password-1");
    const accepted = await client(h).post(`/api/invite/${apiInvite}`).send({ name: "guest1", password: invitePassword });
    assert.equal(accepted.status, 204, accepted.text);
    secrets.add("session token (invite api)", identityCookie(accepted)?.value);
    assert.equal((await client(h).get(`/invite/${moduleInvite}`)).status, 200);
    assert.equal((await client(h).get(`/invite?${moduleInvite}`)).status, 200);
    const pagePassword = secrets.add("invite password (page)", "invited-password-2");
    const page = await client(h).post(`/invite/${moduleInvite}`).type("form").send({ username: "guest2", password: pagePassword });
    assert.equal(page.status, 200, page.text);
    secrets.add("session token (invite page)", identityCookie(page)?.value);

    // Logging in and out, right and wrong.
    const login = await client(h).post("/api/auth/login").send({ name: "redact1", password: fields.password });
    assert.equal(login.status, 204, login.text);
    const session = secrets.add("session token (login)", identityCookie(login)?.value);
    const wrongPassword = secrets.add("wrong login password", "not-the-password-1");
    assert.equal((await client(h).post("/api/auth/login").send({ name: "redact1", password: wrongPassword })).status, 401);
    assert.equal((await client(h).post("/api/auth/login").send({ name: "nobody", password: "nobodys-password-1" })).status, 401);
    secrets.add("unknown user's password", "nobodys-password-1");
    assert.equal((await client(h).get("/api/me").set("Cookie", `identity=${session}`)).status, 200);
    const byUser = await client(h).post("/api/invite").set("Cookie", `identity=${session}`);
    assert.equal(byUser.status, 200, byUser.text);
    secrets.add("invite token (user)", byUser.body.id as string);
    assert.equal((await client(h).post("/api/auth/logout").set("Cookie", `identity=${session}`)).status, 204);
    assert.equal((await client(h).get("/api/me").set("Cookie", `identity=${session}`)).status, 401);

    // What ran was logged: refusals, events, mail, logins and every request.
    const lines = h.logs.lines;
    const codes = new Set(lines.filter((l) => l["msg"] === "request refused").map((l) => l["code"]));
    for (const code of ["AUTH_TOKEN_INVALID", "MAIL_FILTERED", "MAIL_DISPOSABLE", "IP_BLACKLISTED", "PASSWORD_TOO_SHORT", "USERNAME_INVALID", "USERNAME_PENDING", "MAIL_TAKEN", "MALFORMED_REQUEST", "API_KEY_INVALID", "LOGIN_FAILED", "TOKEN_UNKNOWN"]) {
      assert.ok(codes.has(code), `a refusal with ${code} was logged: ${[...codes].join(", ")}`);
    }
    for (const msg of ["user-registered", "login", "mail sent", "event delivered", "request"]) {
      assert.ok(lines.some((l) => l["msg"] === msg), `a "${msg}" line was logged`);
    }

    const text = h.logs.text();
    for (const [label, value] of secrets.all) {
      assert.ok(!text.includes(value), `the logs contain the ${label}`);
      assert.ok(!text.includes(JSON.stringify(value).slice(1, -1)), `the logs contain the ${label}, JSON-escaped`);
    }
  } finally {
    await h.close();
  }
});

test("with the dir: transport the verification link is logged, as the design asks, but never the address", async () => {
  const h = await createHarness();
  try {
    const fields = registration({ mail: "dir.person@example.org" });
    const res = await postRegistration(h, fields);
    assert.equal(res.status, 200);
    await h.outbox.drain();
    const written = h.logs.lines.find((l) => l["msg"] === "verification mail written");
    assert.ok(written, "the dir transport logs where the mail went");
    assert.match(String(written["link"]), /\/verify\//);
    const text = h.logs.text();
    assert.ok(!text.includes(fields.mail), "the address is not logged");
    assert.ok(!text.includes(fields.password), "the password is not logged");
    assert.ok(!text.includes(AUTH_TOKEN), "the auth_token is not logged");
  } finally {
    await h.close();
  }
});

test("the redaction net censors secret-named fields wherever code logs them", async () => {
  const h = await createHarness();
  try {
    h.ctx.log.info({ password: "x", mail: "a@b.c", token: "t" }, "redaction probe");
    h.ctx.log.info(
      { user: { password: "p2", mail: "m2@b.c", token: "t2", auth_token: "a2", secret: "s2", to: "to2@b.c" }, authorization: "Bearer k", headers: { cookie: "identity=c" } },
      "nested probe",
    );
    const probe = h.logs.lines.find((l) => l["msg"] === "redaction probe");
    assert.ok(probe, "the probe line was logged");
    assert.equal(probe["password"], "[redacted]");
    assert.equal(probe["mail"], "[redacted]");
    assert.equal(probe["token"], "[redacted]");
    const nested = h.logs.lines.find((l) => l["msg"] === "nested probe");
    assert.ok(nested, "the nested probe line was logged");
    assert.deepEqual(nested["user"], { password: "[redacted]", mail: "[redacted]", token: "[redacted]", auth_token: "[redacted]", secret: "[redacted]", to: "[redacted]" });
    assert.equal(nested["authorization"], "[redacted]");
    assert.deepEqual(nested["headers"], { cookie: "[redacted]" });
    const text = h.logs.text();
    for (const value of ["a@b.c", "m2@b.c", "to2@b.c", "identity=c", "Bearer k", '"p2"', '"t2"', '"a2"', '"s2"']) {
      assert.ok(!text.includes(value), `${value} is censored`);
    }
  } finally {
    await h.close();
  }
});
