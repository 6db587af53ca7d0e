import { test } from "node:test";
import assert from "node:assert/strict";
import { sweep } from "../../src/service/sweeper.ts";
import type { Store } from "../../src/store/store.ts";
import { metricSample, postRegistration, registration, verifyToken, withHarness } from "../helpers/harness.ts";

test("a sweep removes a registration left unverified past its lifetime, counts it, and its link then fails", async () => {
  await withHarness({}, async (h) => {
    const res = await postRegistration(h, registration({ username: "late" }));
    assert.equal(res.status, 200, res.text);
    const ttlMs = h.config.register.pendingTtlSeconds * 1000;

    h.clock.advance(ttlMs - 1000);
    await sweep(h.ctx);
    assert.deepEqual((await h.ctx.store.listPending(h.clock.now())).map((p) => p.username), ["late"], "still within its lifetime");

    h.clock.advance(2000);
    await sweep(h.ctx);
    assert.deepEqual(await h.ctx.store.listPending(0), [], "gone from the store, not only hidden by the clock");
    assert.equal(metricSample((await h.ctx.metrics.render()).body, "gatehouse_pending_expired_total"), 1);
    assert.ok(h.logs.lines.some((l) => l.msg === "expired pending registrations removed" && l.count === 1), h.logs.text());
    assert.notEqual((await verifyToken(h, res.text)).status, 200, "an expired link creates no account");
    assert.deepEqual(await h.ctx.store.listAccounts(), []);
  });
});

test("a sweep that meets a store failure logs it at error and does not throw", async () => {
  await withHarness({}, async (h) => {
    const failing: Store = Object.assign(Object.create(h.ctx.store) as Store, {
      deleteExpiredPending: () => Promise.reject(new Error("disk I/O error")),
    });
    await sweep({ ...h.ctx, store: failing });
    const line = h.logs.lines.find((l) => l.msg === "sweep failed");
    assert.ok(line, h.logs.text());
    assert.equal(line.level, 50);
    assert.match(String(line.err), /disk I\/O error/);
  });
});
