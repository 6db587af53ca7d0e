import { test } from "node:test";
import assert from "node:assert/strict";
import { AUTH_TOKEN, registration } from "../helpers/harness.ts";
import { freePort, postRegistrationTo, waitFor, withServiceDir } from "../helpers/service.ts";
import type { SmtpPort } from "../helpers/smtp.ts";

/** fetch with a fresh connection each time, so the cluster hands requests to different workers. */
function registerAt(url: string, fields: ReturnType<typeof registration>) {
  return fetch(`${url}/register_account/`, {
    method: "POST",
    headers: { "content-type": "application/encoded", connection: "close" },
    body: Buffer.from(JSON.stringify(fields)).toString("base64"),
  }).then(async (r) => ({ status: r.status, text: await r.text() }));
}

test("serve --workers 2 shares one listener, one throttle and one outbox sender, and stops cleanly", async (t) => {
  const port = await freePort();
  const metricsPort = await freePort();
  const config = (mail: SmtpPort) => ({
    listen: { host: "127.0.0.1", port },
    metrics: { enabled: true, listen: { host: "127.0.0.1", port: metricsPort } },
    register: { secure: false, authTokens: [AUTH_TOKEN], throttleSeconds: 60 },
    mail: { from: "gatehouse <noreply@gatehouse.test>", transport: { host: "127.0.0.1", port: mail.port, secure: false, ignoreTLS: true } },
  });
  await withServiceDir(config, async ({ cfg, spawn, smtp: { sink: smtp } }) => {
    const serve = await spawn(["--workers", "2", "--config", cfg.configPath], { listening: 2 });
    const url = `http://127.0.0.1:${port}`;
    const listeners = new Set(serve.logs.filter((l) => l["msg"] === "gatehouse listening").map((l) => l["pid"]));
    assert.equal(listeners.size, 2, "two worker processes listen");

    await t.test("a second registration from one IP is throttled whichever worker answers", async () => {
      const results = [];
      for (let i = 0; i < 8; i++) results.push(await registerAt(url, registration({ ip: "203.0.113.77" })));
      assert.deepEqual(results.map((r) => r.status), [200, 503, 503, 503, 503, 503, 503, 503]);
      const refusedBy = new Set(serve.logs.filter((l) => l["code"] === "THROTTLED").map((l) => l["pid"]));
      assert.equal(refusedBy.size, 2, "both workers refused some: the count is shared, not per worker");
    });

    await t.test("every queued mail is sent exactly once", async () => {
      const accepted = [];
      for (let i = 0; i < 6; i++) accepted.push(await registerAt(url, registration({ ip: `203.0.113.${100 + i}` })));
      assert.ok(accepted.every((r) => r.status === 200), "accepted.every((r) => r.status === 200)");
      await smtp.waitForMail(7, 15_000);
      await new Promise((r) => setTimeout(r, 1500));
      const recipients = smtp.received.flatMap((m) => m.to);
      assert.equal(recipients.length, 7);
      assert.equal(new Set(recipients).size, 7);
    });

    await t.test("the primary's metrics listener sums the counts of every worker", async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const accepted = text.split("\n").find((l) => l.startsWith('gatehouse_registrations_total{outcome="accepted"}'));
      const throttled = text.split("\n").find((l) => l.startsWith('gatehouse_registrations_total{outcome="throttled"}'));
      assert.equal(accepted?.split(" ")[1], "7", text.slice(0, 2000));
      assert.equal(throttled?.split(" ")[1], "7", "7 throttled over both workers");
    });

    await t.test("bad auth_tokens from one peer are counted once over both workers, also when they arrive at once", async () => {
      // The peer is this test (127.0.0.1): twelve at once, ten are let through to a 401 and two are over the limit.
      const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => registerAt(url, registration({ ip: "203.0.113.201", auth_token: `wrong-${i}` }))));
      assert.deepEqual(burst.map((r) => r.status).sort(), [...Array<number>(10).fill(401), 429, 429]);
      const refusals = () => serve.logs.filter((l) => l["code"] === "AUTH_TOKEN_INVALID");
      await waitFor(() => refusals().length >= 10, { timeoutMs: 5_000, what: "the log lines of the ten 401s" });
      assert.equal(new Set(refusals().map((l) => l["pid"])).size, 2, "both workers refused some: the count is shared, not per worker");
      const after = [];
      for (let i = 0; i < 2; i++) after.push((await registerAt(url, registration({ ip: "203.0.113.201", auth_token: "wrong-again" }))).status);
      assert.deepEqual(after, [429, 429]);
    });

    await t.test("a worker that dies is replaced and the service keeps answering", async () => {
      const victim = [...listeners][1] as number;
      process.kill(victim, "SIGKILL");
      await waitFor(() => serve.logs.filter((l) => l["msg"] === "gatehouse listening").length >= 3, { timeoutMs: 20_000, what: "a replacement worker" });
      const after = await postRegistrationTo(url, registration({ ip: "203.0.113.150" }));
      assert.equal(after.status, 200);
    });

    await t.test("SIGTERM stops the primary and its workers with exit code 0", async () => {
      assert.equal(await serve.stop(), 0);
    });
  }, { smtp: true });
});
