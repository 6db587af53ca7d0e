import { test } from "node:test";
import assert from "node:assert/strict";
import { createHarness, registerAndVerify, type Harness } from "../helpers/harness.ts";
import { client, issueInvite, PASSWORD } from "../helpers/invites.ts";
import { SECRET, startReceiver, type Receiver } from "../helpers/webhook-receiver.ts";

// Events leave through the outbox: signed, retried with backoff, at least once, in order per account.
// The receiver (helpers/webhook-receiver.ts) checks them the way the README tells operators to.

/** A harness whose webhook points at `receiver`, its clock on the wall clock as the receiver's is. */
async function harnessFor(receiver: Receiver, secret = SECRET): Promise<Harness> {
  const h = await createHarness({ events: { webhook: { url: receiver.url, secret } } });
  h.clock.t = Date.now();
  return h;
}

async function acceptInvite(h: Harness, name: string): Promise<void> {
  const { id } = await issueInvite(h);
  const res = await client(h).post(`/api/invite/${id}`).send({ name, password: PASSWORD });
  assert.equal(res.status, 204, res.text);
}

function countMsg(h: Harness, msg: string): number {
  return h.logs.lines.filter((l) => l["msg"] === msg).length;
}

test("a verified registration is POSTed as user-registered, signed with the webhook secret", async () => {
  const receiver = await startReceiver();
  const h = await harnessFor(receiver);
  try {
    await registerAndVerify(h, { username: "dana" });
    const verifiedAt = h.clock.now();
    await h.outbox.drain();

    assert.equal(receiver.deliveries.length, 1, "one delivery");
    const [delivery] = receiver.deliveries;
    assert.equal(delivery!.check, "ok", "the signature verifies with the shared secret");
    assert.equal(delivery!.answered, 200);
    assert.equal(delivery!.headers["content-type"], "application/json");
    assert.equal(delivery!.headers["x-gatehouse-event"], "user-registered");
    assert.match(String(delivery!.headers["x-gatehouse-delivery"]), /^\d+$/);
    assert.match(String(delivery!.headers["x-gatehouse-signature"]), /^t=\d+,v1=[0-9a-f]{64}$/);
    assert.equal(
      String(delivery!.headers["x-gatehouse-signature"]).slice(2, String(delivery!.headers["x-gatehouse-signature"]).indexOf(",")),
      String(Math.floor(verifiedAt / 1000)),
      "signed at the time of sending",
    );

    const [account] = await h.ctx.store.listAccounts();
    assert.ok(account, "the account exists");
    assert.deepEqual(delivery!.event, {
      type: "user-registered",
      occurredAt: new Date(verifiedAt).toISOString(),
      data: { id: account.id, username: "dana", via: "verification" },
    });
    assert.equal(await h.ctx.store.outboxDepth(), 0, "nothing left queued");
    // The event carries no secret: no password, token or mail address.
    assert.ok(!delivery!.body.includes("@"), `no mail address in ${delivery!.body}`);
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("an accepted invite sends user-registered, then invite-accepted", async () => {
  const receiver = await startReceiver();
  const h = await harnessFor(receiver);
  try {
    await acceptInvite(h, "erin");
    await h.outbox.drain();

    assert.ok(receiver.deliveries.every((d) => d.check === "ok"), "every delivery is correctly signed");
    const events = receiver.accepted();
    assert.deepEqual(events.map((e) => e.type), ["user-registered", "invite-accepted"]);
    const [account] = await h.ctx.store.listAccounts();
    assert.ok(account, "the account exists");
    assert.deepEqual(events[0]!.data, { id: account.id, username: "erin", via: "invite", invitedBy: "Alice's key" });
    assert.equal(events[1]!.data["username"], "erin");
    assert.match(String(events[1]!.data["invite"]), /^[0-9a-f]{10}$/);
    assert.deepEqual(receiver.deliveries.map((d) => d.headers["x-gatehouse-event"]), ["user-registered", "invite-accepted"]);
    const ids = receiver.deliveries.map((d) => Number(d.headers["x-gatehouse-delivery"]));
    assert.ok(ids[0]! < ids[1]!, `delivery ids rise: ${ids.join(", ")}`);
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("a receiver answering 500 twice gets the event once, after two retries with backoff", async () => {
  const receiver = await startReceiver((n) => (n <= 2 ? 500 : 200));
  const h = await harnessFor(receiver);
  try {
    await registerAndVerify(h, { username: "frank" });
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 1, "first attempt");
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 1, "nothing before the backoff has passed");

    h.clock.advance(1_999);
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 1, "still waiting at 1.999 s");
    h.clock.advance(1);
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 2, "second attempt after 2 s");

    h.clock.advance(3_999);
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 2, "still waiting at 3.999 s");
    h.clock.advance(1);
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 3, "third attempt after 4 s more");

    h.clock.advance(3_600_000);
    await h.outbox.drain();
    assert.deepEqual(receiver.deliveries.map((d) => d.answered), [500, 500, 200], "delivered once, then left alone");
    assert.ok(receiver.deliveries.every((d) => d.check === "ok"), "every attempt is freshly and correctly signed");
    assert.equal(new Set(receiver.deliveries.map((d) => d.headers["x-gatehouse-delivery"])).size, 1, "one delivery id across retries");
    assert.equal(new Set(receiver.deliveries.map((d) => d.body)).size, 1, "the same body every time");
    assert.equal(receiver.accepted().length, 1);
    assert.equal(countMsg(h, "outbox send failed, will retry"), 2);
    const delivered = h.logs.lines.filter((l) => l["msg"] === "event delivered");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0]!["attempts"], 3);
    assert.equal(await h.ctx.store.outboxDepth(), 0);
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("a 4xx answer marks the event failed and it is not tried again", async () => {
  const receiver = await startReceiver(() => 422);
  const h = await harnessFor(receiver);
  try {
    await registerAndVerify(h, { username: "gina" });
    await h.outbox.drain();
    for (let i = 0; i < 5; i++) {
      h.clock.advance(600_000);
      await h.outbox.drain();
    }
    assert.deepEqual(receiver.deliveries.map((d) => d.answered), [422]);
    const failures = h.logs.lines.filter((l) => l["msg"] === "outbox item failed for good");
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!["kind"], "event");
    assert.match(String(failures[0]!["reason"]), /422/);
    assert.equal(countMsg(h, "outbox send failed, will retry"), 0);
    assert.equal(await h.ctx.store.outboxDepth(), 0, "nothing left queued");
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("408 and 429 answers are retried like a 5xx", async () => {
  const receiver = await startReceiver((n) => (n === 1 ? 429 : n === 2 ? 408 : 200));
  const h = await harnessFor(receiver);
  try {
    await registerAndVerify(h, { username: "hugo" });
    await h.outbox.drain();
    h.clock.advance(2_000);
    await h.outbox.drain();
    h.clock.advance(4_000);
    await h.outbox.drain();
    assert.deepEqual(receiver.deliveries.map((d) => d.answered), [429, 408, 200]);
    assert.equal(countMsg(h, "outbox item failed for good"), 0);
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("an account's second event waits while its first is retried; other accounts are not held up", async () => {
  // The first user-registered of "ivan" fails once; everything else is accepted.
  let ivanFailed = false;
  const receiver = await startReceiver((_n, event) => {
    if (event?.type === "user-registered" && event.data["username"] === "ivan" && !ivanFailed) {
      ivanFailed = true;
      return 503;
    }
    return 200;
  });
  const h = await harnessFor(receiver);
  try {
    await acceptInvite(h, "ivan");
    await registerAndVerify(h, { username: "judy" });
    await h.outbox.drain();

    const seen = () => receiver.deliveries.map((d) => `${d.event!.type}:${String(d.event!.data["username"])}:${d.answered}`);
    assert.deepEqual(seen(), ["user-registered:ivan:503", "user-registered:judy:200"], "ivan's invite-accepted waits; judy's event goes");
    h.clock.advance(1_000);
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 2, "nothing of ivan's before the retry is due");

    h.clock.advance(1_000);
    await h.outbox.drain();
    assert.deepEqual(seen(), [
      "user-registered:ivan:503",
      "user-registered:judy:200",
      "user-registered:ivan:200",
      "invite-accepted:ivan:200",
    ]);
    assert.ok(receiver.deliveries.every((d) => d.check === "ok"), "every delivery is correctly signed");
    assert.equal(await h.ctx.store.outboxDepth(), 0);
  } finally {
    await h.close();
    await receiver.close();
  }
});

test("a receiver refuses a stale or wrongly signed delivery, and the event is marked failed", async () => {
  const receiver = await startReceiver();
  const stale = await harnessFor(receiver);
  const wrong = await harnessFor(receiver, "another-secret-0123456789abcdef");
  try {
    // A sender whose clock is ten minutes behind signs timestamps the receiver takes for a replay.
    stale.clock.t = Date.now() - 10 * 60_000;
    await registerAndVerify(stale, { username: "kate" });
    await stale.outbox.drain();
    await registerAndVerify(wrong, { username: "liam" });
    await wrong.outbox.drain();

    assert.deepEqual(receiver.deliveries.map((d) => [d.check, d.answered]), [
      ["stale", 400],
      ["bad-signature", 401],
    ]);
    assert.equal(receiver.accepted().length, 0);
    for (const h of [stale, wrong]) {
      assert.equal(countMsg(h, "outbox item failed for good"), 1, "marked failed");
      assert.equal(await h.ctx.store.outboxDepth(), 0, "not retried");
    }
  } finally {
    await stale.close();
    await wrong.close();
    await receiver.close();
  }
});

test("an event queued while a webhook was configured is marked failed, not sent, once the webhook is removed", async () => {
  const receiver = await startReceiver();
  const h = await harnessFor(receiver);
  try {
    await registerAndVerify(h, { username: "mona" });
    const { events: _dropped, ...withoutEvents } = h.ctx.config;
    h.ctx.config = withoutEvents;
    await h.outbox.drain();
    assert.equal(receiver.deliveries.length, 0);
    const failures = h.logs.lines.filter((l) => l["msg"] === "outbox item failed for good");
    assert.equal(failures.length, 1);
    assert.match(String(failures[0]!["reason"]), /events\.webhook/);
  } finally {
    await h.close();
    await receiver.close();
  }
});
