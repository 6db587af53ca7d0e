import { test } from "node:test";
import assert from "node:assert/strict";
import { AUTH_TOKEN, createHarness, metricSample as sample, postRegistration, registration } from "./helpers/harness.ts";
import { withServiceDir } from "./helpers/service.ts";

test("/metrics counts requests, registrations by outcome, verifications, invites and logins", async () => {
  const h = await createHarness({ register: { secure: false, authTokens: [AUTH_TOKEN], blacklist: ["192.0.2.0/24"] } });
  try {
    const ok = await postRegistration(h, registration({ username: "mia" }));
    assert.equal(ok.status, 200);
    assert.equal((await postRegistration(h, registration({ auth_token: "wrong" }))).status, 401);
    assert.equal((await postRegistration(h, registration({ ip: "192.0.2.5" }))).status, 403);
    assert.equal((await postRegistration(h, registration({ username: "mia" }))).status, 401);
    assert.equal((await h.http.post(`/register_account/verify/${ok.text}`)).status, 200);
    assert.equal((await h.http.post(`/register_account/verify/${ok.text}`)).status, 200);
    assert.equal((await h.http.post("/register_account/verify/nonsense")).status, 404);
    const login = (password: string) =>
      h.http.post("/api/auth/login").set("content-type", "application/json").send({ name: "mia", password });
    assert.equal((await login("correct horse battery")).status, 204);
    assert.equal((await login("wrong password")).status, 401);

    const res = await h.http.get("/metrics");
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /^text\/plain/);
    const text = res.text;
    assert.equal(sample(text, 'gatehouse_registrations_total{outcome="accepted"}'), 1);
    assert.equal(sample(text, 'gatehouse_registrations_total{outcome="auth_token_invalid"}'), 1);
    assert.equal(sample(text, 'gatehouse_registrations_total{outcome="ip_blacklisted"}'), 1);
    assert.equal(sample(text, 'gatehouse_registrations_total{outcome="username_pending"}'), 1);
    assert.equal(sample(text, 'gatehouse_verifications_total{outcome="created"}'), 1);
    assert.equal(sample(text, 'gatehouse_verifications_total{outcome="already_active"}'), 1);
    assert.equal(sample(text, 'gatehouse_verifications_total{outcome="unknown"}'), 1);
    assert.equal(sample(text, 'gatehouse_logins_total{outcome="success"}'), 1);
    assert.equal(sample(text, 'gatehouse_logins_total{outcome="failed"}'), 1);
    assert.equal(sample(text, 'gatehouse_http_requests_total{route="/register_account/",method="POST",status="401"}'), 2);
    assert.ok(text.includes("gatehouse_http_request_duration_seconds_bucket{"), "latency histogram present");
    // One verification mail is still queued: the sender does not run in the harness.
    assert.equal(sample(text, "gatehouse_outbox_depth"), 1);
    assert.ok(!text.includes(ok.text), "no token in the metrics");

    await h.outbox.drain();
    const after = (await h.http.get("/metrics")).text;
    assert.equal(sample(after, 'gatehouse_outbox_deliveries_total{kind="mail",result="sent"}'), 1);
    assert.equal(sample(after, "gatehouse_outbox_depth"), 0);
  } finally {
    await h.close();
  }
});

test("invites created and accepted are counted by API key", async () => {
  const h = await createHarness();
  try {
    const { createApiKey } = await import("../src/domain/keys.ts");
    const key = await createApiKey(h.ctx, "partner");
    const made = await h.http.get(`/invites_api?key=${encodeURIComponent(key.key)}`);
    assert.equal(made.status, 201);
    const accepted = await h.http
      .post(`/api/invite/${made.body.id}`)
      .set("content-type", "application/json")
      .send({ name: "noah", password: "long enough password" });
    assert.equal(accepted.status, 204);
    const text = (await h.http.get("/metrics")).text;
    assert.equal(sample(text, `gatehouse_invites_created_total{issuer="key",key="${key.id}"}`), 1);
    assert.equal(sample(text, `gatehouse_invites_accepted_total{issuer="key",key="${key.id}"}`), 1);
  } finally {
    await h.close();
  }
});

test("metrics can be turned off, or served on a listener of their own", async () => {
  const off = await createHarness({ metrics: { enabled: false } });
  try {
    assert.equal((await off.http.get("/metrics")).status, 404);
  } finally {
    await off.close();
  }

  await withServiceDir({ metrics: { enabled: true, listen: { host: "127.0.0.1", port: 0 } } }, async ({ start }) => {
    const svc = await start();
    assert.equal((await fetch(`${svc.service.url}/metrics`)).status, 404, "not on the public listener");
    assert.ok(svc.service.metricsUrl, "a metrics listener was started");
    const res = await fetch(`${svc.service.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /gatehouse_outbox_depth 0/);
  });
});
