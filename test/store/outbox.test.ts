import assert from "node:assert/strict";
import type { Store } from "../../src/store/store.ts";
import { T0, MINUTE, DAY, pending, mail, event, invite, insertOk, claimAll, storeContract, account } from "./fixture.ts";

storeContract("outbox", (it) => {
  it("claimOutbox leases due items in id order, counting attempts, and not again while leased", async (store) => {
    await insertOk(store, pending(), ["a", "b", "c"].map((p) => mail(p)));
    const first = await store.claimOutbox(T0, T0 + MINUTE, 2);
    assert.deepEqual(first.map((i) => [i.payload, i.attempts]), [["a", 1], ["b", 1]]);
    assert.ok(first[0]!.id < first[1]!.id, "first[0]!.id < first[1]!.id");
    const rest = await store.claimOutbox(T0, T0 + MINUTE, 10);
    assert.deepEqual(rest.map((i) => i.payload), ["c"]);
    assert.deepEqual(await store.claimOutbox(T0 + MINUTE - 1, T0 + 2 * MINUTE, 10), []);
    assert.equal(await store.outboxDepth(), 3, "leased items are still queued");
  });

  it("items not yet due are not claimed", async (store) => {
    await insertOk(store, pending(), [mail("later", T0 + MINUTE)]);
    assert.deepEqual(await store.claimOutbox(T0, T0 + MINUTE, 10), []);
    assert.deepEqual((await store.claimOutbox(T0 + MINUTE, T0 + 2 * MINUTE, 10)).map((i) => i.payload), ["later"]);
  });

  it("an item whose lease ran out is claimed again, as after a crashed sender", async (store, fixture) => {
    await insertOk(store, pending(), [mail("orphaned")]);
    const [claimed] = await store.claimOutbox(T0, T0 + MINUTE, 10);
    assert.ok(claimed, "claimed");
    const other = await fixture.connect();
    const again = await other.claimOutbox(T0 + MINUTE, T0 + 2 * MINUTE, 10);
    assert.deepEqual(again.map((i) => [i.id, i.payload, i.attempts]), [[claimed.id, "orphaned", 2]]);
  });

  it("purgeErased runs with nothing erased and after a sent payload, and keeps every row", async (store) => {
    await store.purgeErased();
    const id = await insertOk(store, pending({ username: "purged" }), [mail("sealed-to-erase")]);
    const [item] = await claimAll(store, T0);
    await store.markOutboxSent(item!.id, T0);
    await store.purgeErased();
    assert.equal((await store.listPending(T0))[0]?.id, id);
    assert.equal((await store.listPending(T0))[0]?.mailStatus, "sent");
  });

  it("markOutboxSent takes an item out of the queue", async (store) => {
    await insertOk(store, pending(), [mail("x"), mail("y")]);
    const [x] = await claimAll(store);
    await store.markOutboxSent(x!.id, T0);
    assert.equal(await store.outboxDepth(), 1);
    assert.deepEqual((await claimAll(store, T0 + DAY)).map((i) => i.payload), ["y"]);
  });

  it("markOutboxRetry makes an item due again at its next attempt time", async (store) => {
    await insertOk(store, pending(), [mail("flaky")]);
    const [item] = await claimAll(store);
    await store.markOutboxRetry(item!.id, T0 + 5 * MINUTE, "421 try again later ".repeat(100));
    assert.deepEqual(await claimAll(store, T0 + 5 * MINUTE - 1), []);
    const retried = await claimAll(store, T0 + 5 * MINUTE);
    assert.deepEqual(retried.map((i) => [i.id, i.attempts]), [[item!.id, 2]]);
    assert.equal(await store.outboxDepth(), 1);
  });

  it("markOutboxFailed takes an item out of the queue for good", async (store) => {
    await insertOk(store, pending(), [mail("doomed")]);
    const [item] = await claimAll(store);
    await store.markOutboxFailed(item!.id, "550 no such user", T0);
    assert.equal(await store.outboxDepth(), 0);
    assert.deepEqual(await claimAll(store, T0 + DAY), []);
  });

  it("outboxDepth counts queued items only", async (store) => {
    assert.equal(await store.outboxDepth(), 0);
    await insertOk(store, pending(), [mail("1"), mail("2"), event("3")]);
    assert.equal(await store.outboxDepth(), 3);
    const items = await claimAll(store);
    await store.markOutboxSent(items[0]!.id, T0);
    await store.markOutboxFailed(items[1]!.id, "boom", T0);
    assert.equal(await store.outboxDepth(), 1);
  });

  it("two instances claiming at once never get the same item", async (store, fixture) => {
    const total = 60;
    await insertOk(store, pending(), Array.from({ length: total }, (_, i) => mail(`m${i}`)));
    const instances = [store, await fixture.connect()];
    const drain = async (s: Store): Promise<number[]> => {
      const ids: number[] = [];
      for (;;) {
        const batch = await s.claimOutbox(T0, T0 + MINUTE, 3);
        if (batch.length === 0) return ids;
        ids.push(...batch.map((i) => i.id));
      }
    };
    // Several drainers per instance so claims really overlap on a backend that allows it.
    const claimed = (await Promise.all(instances.flatMap((s) => [drain(s), drain(s), drain(s)]))).flat();
    assert.equal(claimed.length, total);
    assert.equal(new Set(claimed).size, total);
  });

  it("an account's next event is not claimed while its earlier event is still queued", async (store) => {
    const inv = invite({ uses: 1 });
    await store.insertInvite(inv);
    const carol = await store.acceptInvite(inv.tokenHash, T0, account("carol"), () => [
      event("carol-1"),
      event("carol-2"),
      event("carol-3"),
    ]);
    if (!carol.ok) assert.fail(`accept refused: ${carol.reason}`);
    const more = pending({ username: "dave" });
    await insertOk(store, more, [mail("dave-mail")]);
    const dave = await store.activatePending(more.tokenHash, T0, () => [event("dave-1"), event("dave-2")]);
    if (dave?.outcome !== "created") assert.fail("dave was not activated");

    const first = await claimAll(store);
    assert.deepEqual(first.map((i) => i.payload), ["carol-1", "dave-mail", "dave-1"], "one event per account, mail is not held back");

    // A retry scheduled for the first event keeps the second back, also once both are due.
    const carol1 = first.find((i) => i.payload === "carol-1")!;
    await store.markOutboxRetry(carol1.id, T0 + MINUTE, "webhook answered 500");
    for (const item of first.filter((i) => i.payload.startsWith("dave"))) await store.markOutboxSent(item.id, T0);
    const dave2 = await claimAll(store, T0 + 1);
    assert.deepEqual(dave2.map((i) => i.payload), ["dave-2"]);
    await store.markOutboxSent(dave2[0]!.id, T0 + 1);
    assert.deepEqual((await claimAll(store, T0 + 2 * MINUTE)).map((i) => [i.payload, i.attempts]), [["carol-1", 2]]);
    // A leased first event (a sender busy with it) holds the second back too.
    assert.deepEqual(await claimAll(store, T0 + 2 * MINUTE + 1), []);

    await store.markOutboxSent(carol1.id, T0 + 2 * MINUTE);
    const next = await claimAll(store, T0 + 2 * MINUTE);
    assert.deepEqual(next.map((i) => i.payload), ["carol-2"]);
    // One that failed for good no longer holds the rest of the account's events.
    await store.markOutboxFailed(next[0]!.id, "webhook answered 400", T0 + 2 * MINUTE);
    assert.deepEqual((await claimAll(store, T0 + 2 * MINUTE)).map((i) => [i.payload, i.userId]), [["carol-3", carol.account.id]]);
  });

  it("instances claiming at once hand out each account's events one at a time and in order", async (store, fixture) => {
    const accounts: number[] = [];
    for (let a = 0; a < 6; a++) {
      const p = pending();
      await insertOk(store, p);
      const result = await store.activatePending(p.tokenHash, T0, () => [0, 1, 2, 3, 4].map((n) => event(`${a}-${n}`)));
      if (result?.outcome !== "created") assert.fail("activation failed");
      accounts.push(result.account.id);
    }
    const instances = [store, await fixture.connect()];
    const inFlight = new Set<number>();
    const delivered: { userId: number; payload: string }[] = [];
    let overlaps = 0;
    const sender = async (s: Store): Promise<void> => {
      for (let idle = 0; idle < 20; ) {
        const batch = await s.claimOutbox(T0, T0 + MINUTE, 2);
        if (batch.length === 0) {
          idle += 1;
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        idle = 0;
        for (const item of batch) {
          if (inFlight.has(item.userId!)) overlaps += 1;
          inFlight.add(item.userId!);
          delivered.push({ userId: item.userId!, payload: item.payload });
          await new Promise((resolve) => setImmediate(resolve));
          inFlight.delete(item.userId!);
          await s.markOutboxSent(item.id, T0);
        }
      }
    };
    await Promise.all(instances.flatMap((s) => [sender(s), sender(s), sender(s)]));
    assert.equal(overlaps, 0, "no two events of one account were out at the same time");
    assert.equal(delivered.length, 30, "every event was handed out once");
    for (const [a, userId] of accounts.entries()) {
      assert.deepEqual(
        delivered.filter((d) => d.userId === userId).map((d) => d.payload),
        [0, 1, 2, 3, 4].map((n) => `${a}-${n}`),
        `account ${a}'s events in order`,
      );
    }
    assert.equal(await store.outboxDepth(), 0);
  });
});

storeContract("requeuing a verification mail", (it) => {
  it("a failed mail is queued again, attempts reset and due now", async (store) => {
    await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
    const [item] = await claimAll(store);
    await store.markOutboxFailed(item!.id, "550 mailbox unavailable", T0);
    assert.equal(await store.outboxDepth(), 0);
    assert.equal((await store.listPending(T0))[0]?.mailStatus, "failed");

    assert.deepEqual(await store.requeuePendingMail("juliet", T0 + 5), { ok: true, previous: "failed" });
    assert.equal((await store.listPending(T0 + 5))[0]?.mailStatus, "queued");
    assert.equal(await store.outboxDepth(), 1);
    assert.deepEqual(
      (await claimAll(store, T0 + 5)).map((i) => [i.id, i.payload, i.attempts]),
      [[item!.id, "juliet-mail", 1]],
    );
  });

  it("a queued mail waiting for its retry becomes due now", async (store) => {
    await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
    for (let n = 0; n < 3; n++) {
      const [item] = await claimAll(store, T0 + n * 10 * MINUTE);
      await store.markOutboxRetry(item!.id, T0 + (n + 1) * 10 * MINUTE, "connection refused");
    }
    const now = T0 + 25 * MINUTE;
    assert.deepEqual(await claimAll(store, now), [], "not due before the requeue");
    assert.deepEqual(await store.requeuePendingMail("juliet", now), { ok: true, previous: "queued" });
    assert.deepEqual((await claimAll(store, now)).map((i) => [i.payload, i.attempts]), [["juliet-mail", 1]]);
  });

  it("a mail a sender is holding keeps its lease, so it is not sent twice at once", async (store) => {
    await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
    await store.claimOutbox(T0, T0 + MINUTE, 10);
    assert.deepEqual(await store.requeuePendingMail("juliet", T0 + 1), { ok: true, previous: "queued" });
    assert.deepEqual(await claimAll(store, T0 + 1), []);
    assert.deepEqual((await claimAll(store, T0 + MINUTE)).map((i) => [i.payload, i.attempts]), [["juliet-mail", 1]]);
  });

  it("only a live pending registration with a stored, unsent mail can be requeued", async (store) => {
    await insertOk(store, pending({ username: "sent" }), [mail("sent-mail")]);
    await insertOk(store, pending({ username: "nomail" }), []);
    await insertOk(store, pending({ username: "expired", expiresAt: T0 + MINUTE }), [mail("expired-mail")]);
    const done = pending({ username: "active" });
    await insertOk(store, done, [mail("active-mail")]);
    for (const item of await claimAll(store)) {
      if (item.payload === "sent-mail") await store.markOutboxSent(item.id, T0);
      else await store.markOutboxFailed(item.id, "550", T0);
    }
    await store.activatePending(done.tokenHash, T0, () => []);

    assert.deepEqual(await store.requeuePendingMail("sent", T0 + MINUTE), { ok: false, reason: "sent" });
    assert.deepEqual(await store.requeuePendingMail("nomail", T0 + MINUTE), { ok: false, reason: "no-mail" });
    assert.deepEqual(await store.requeuePendingMail("expired", T0 + MINUTE), { ok: false, reason: "no-pending" });
    assert.deepEqual(await store.requeuePendingMail("active", T0 + MINUTE), { ok: false, reason: "no-pending" });
    assert.deepEqual(await store.requeuePendingMail("nobody", T0 + MINUTE), { ok: false, reason: "no-pending" });
    assert.equal(await store.outboxDepth(), 0, "nothing was queued again");
  });
});
