import { test } from "node:test";
import assert from "node:assert/strict";
import { warmRefusals } from "../../src/service/warm-up.ts";
import { AUTH_TOKEN, metricSample, postRegistrationJson, registration, storeSnapshot, withHarness } from "../helpers/harness.ts";

test("the start-up warm-up answers each cheap refusal and leaves the service's log, metrics, limits and store as they were", async () => {
  // A service with no blacklist and no mail filter: the warm-up's refusals come from rules of its own.
  for (const overrides of [{ register: { blacklist: [], filteredMails: [] } }, { register: { blacklist: ["198.51.100.0/24"], filteredMails: ["@example\\.net$"] } }]) {
    await withHarness(overrides, async (h) => {
      const before = await storeSnapshot(h);
      const linesBefore = h.logs.lines.length;
      assert.deepEqual(await warmRefusals(h.ctx), [401, 403, 403, 400], "bad auth_token, blacklisted IP, filtered mail, malformed base64");
      assert.deepEqual(await storeSnapshot(h), before);
      assert.equal(h.logs.lines.length, linesBefore, h.logs.text());
      const metrics = (await h.ctx.metrics.render()).body;
      assert.equal(metricSample(metrics, 'gatehouse_registrations_total{outcome="AUTH_TOKEN_INVALID"}'), null, metrics.slice(0, 2000));
      assert.ok(!metrics.includes("gatehouse_http_requests_total{"), "no request counted");
    });
  }
});

test("after the warm-up a peer still has all ten bad auth_tokens before a 429", async () => {
  await withHarness({ register: { authTokens: [AUTH_TOKEN] } }, async (h) => {
    await warmRefusals(h.ctx);
    for (let i = 0; i < 10; i++) assert.equal((await postRegistrationJson(h, registration({ auth_token: `wrong-${i}` }))).status, 401, `attempt ${i + 1}`);
    assert.equal((await postRegistrationJson(h, registration({ auth_token: "wrong-again" }))).status, 429);
  });
});
