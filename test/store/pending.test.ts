import assert from "node:assert/strict";
import type { AccountSummary } from "../../src/store/store.ts";
import { usernameSkeleton } from "../../src/domain/username.ts";
import { T0, MINUTE, DAY, pending, mail, event, invite, insertOk, createAccount, claimAll, storeContract, account } from "./fixture.ts";

storeContract("pending registrations", (it) => {
  it("findSkeletonHolder finds a name by its look-alike skeleton: an account first, then a live pending registration", async (store) => {
    assert.equal(await store.findSkeletonHolder(usernameSkeleton("root"), T0), null);
    await insertOk(store, pending({ username: "rооt", expiresAt: T0 + MINUTE }));
    assert.equal(await store.findSkeletonHolder(usernameSkeleton("root"), T0), "pending", "Cyrillic о and Latin o look alike");
    assert.equal(await store.findSkeletonHolder(usernameSkeleton("root"), T0 + MINUTE), null, "an expired registration holds nothing");
    const inv = invite();
    await store.insertInvite(inv);
    assert.equal((await store.acceptInvite(inv.tokenHash, T0, account("roоt"), () => [])).ok, true);
    assert.equal(await store.findSkeletonHolder(usernameSkeleton("root"), T0), "account", "the account wins over the pending one");
    assert.equal(await store.findNameHolder("root", T0), null, "the name itself is free: only the skeleton matches");
    assert.equal(await store.deleteAccount("roоt"), true);
    assert.equal(await store.findSkeletonHolder(usernameSkeleton("root"), T0), "pending");
  });

  it("a pending registration holds its name and mail hash until it expires", async (store) => {
    const p = pending({ username: "juliet", mailHash: "juliet-mail" });
    const id = await insertOk(store, p);
    assert.ok(Number.isInteger(id) && id > 0, "Number.isInteger(id) && id > 0");
    assert.equal(await store.findNameHolder("juliet", T0), "pending");
    assert.equal(await store.isMailHashHeld("juliet-mail", T0), true);
    assert.equal(await store.findNameHolder("juliet", p.expiresAt - 1), "pending");
    assert.equal(await store.findNameHolder("juliet", p.expiresAt), null);
    assert.equal(await store.isMailHashHeld("juliet-mail", p.expiresAt), false);
    assert.equal(await store.findNameHolder("romeo", T0), null);
    assert.equal(await store.isMailHashHeld("romeo-mail", T0), false);
  });

  it("a pending registration keeps the language it was made in; one stored without it reads as null", async (store) => {
    await insertOk(store, pending({ username: "greta", lang: "de" }));
    await insertOk(store, pending({ username: "hank" }));
    const langs = Object.fromEntries((await store.listPending(T0)).map((p) => [p.username, p.lang]));
    assert.deepEqual(langs, { greta: "de", hank: null });
  });

  it("insertPending queues its outbox items for the new registration", async (store) => {
    const id = await insertOk(store, pending(), [mail("m"), event("e")]);
    assert.equal(await store.outboxDepth(), 2);
    const items = await claimAll(store);
    assert.deepEqual(
      items.map((i) => [i.kind, i.payload, i.userId, i.attempts]),
      [
        ["mail", "m", id, 1],
        ["event", "e", id, 1],
      ],
    );
  });

  it("a second registration of a held name is refused with conflict 'username' and queues nothing", async (store) => {
    await insertOk(store, pending({ username: "juliet" }), [mail()]);
    const result = await store.insertPending(pending({ username: "juliet" }), [mail(), event()]);
    assert.deepEqual(result, { ok: false, conflict: "username" });
    assert.equal(await store.outboxDepth(), 1);
    assert.equal((await store.listPending(T0)).length, 1);
  });

  it("a second registration of a held mail hash is refused with conflict 'mail'", async (store) => {
    await insertOk(store, pending({ mailHash: "shared" }));
    const result = await store.insertPending(pending({ mailHash: "shared" }), [mail()]);
    assert.deepEqual(result, { ok: false, conflict: "mail" });
    assert.equal(await store.outboxDepth(), 0);
  });

  it("an account's name and mail hash refuse new registrations", async (store) => {
    await createAccount(store, { username: "juliet", mailHash: "juliet-mail" });
    assert.deepEqual(await store.insertPending(pending({ username: "juliet" }), []), {
      ok: false,
      conflict: "username",
    });
    assert.deepEqual(await store.insertPending(pending({ mailHash: "juliet-mail" }), []), {
      ok: false,
      conflict: "mail",
    });
    assert.equal(await store.isMailHashHeld("juliet-mail", T0 + 365 * DAY), true);
  });

  it("an expired pending registration is voided by a new one with the same name, with its queued mail", async (store) => {
    const old = pending({ username: "juliet", expiresAt: T0 + MINUTE });
    await insertOk(store, old, [mail("old")]);
    const later = T0 + 2 * MINUTE;
    await insertOk(store, pending({ username: "juliet", createdAt: later, expiresAt: later + DAY }), [mail("new")]);
    assert.equal(await store.findByTokenHash(old.tokenHash, T0), null);
    assert.deepEqual((await claimAll(store, later)).map((i) => i.payload), ["new"]);
  });

  it("an expired pending registration is voided by a new one with the same mail hash", async (store) => {
    const old = pending({ mailHash: "shared", expiresAt: T0 + MINUTE });
    await insertOk(store, old, [mail("old")]);
    const later = T0 + MINUTE;
    const fresh = pending({ mailHash: "shared", createdAt: later, expiresAt: later + DAY });
    await insertOk(store, fresh, [mail("new")]);
    assert.equal(await store.findNameHolder(old.username, T0), null);
    assert.equal(await store.findNameHolder(fresh.username, later), "pending");
    assert.deepEqual((await claimAll(store, later)).map((i) => i.payload), ["new"]);
  });

  it("findByTokenHash tells pending, active, expired and unknown tokens apart", async (store) => {
    const live = pending({ username: "live" });
    const expiring = pending({ username: "expiring", expiresAt: T0 + MINUTE });
    const activated = pending({ username: "activated" });
    await insertOk(store, live);
    await insertOk(store, expiring);
    await insertOk(store, activated);
    await store.activatePending(activated.tokenHash, T0, () => []);
    const later = T0 + MINUTE;
    assert.deepEqual(await store.findByTokenHash(live.tokenHash, later), {
      state: "pending",
      username: "live",
      expiresAt: live.expiresAt,
    });
    assert.deepEqual(await store.findByTokenHash(activated.tokenHash, later), { state: "active", username: "activated" });
    assert.equal(await store.findByTokenHash(expiring.tokenHash, later), null);
    assert.equal(await store.findByTokenHash("no-such-token", later), null);
  });

  it("activatePending creates the account once, then answers already-active", async (store) => {
    const p = pending({ username: "juliet", mailHash: "juliet-mail" });
    await insertOk(store, p, [mail()]);
    const seen: AccountSummary[] = [];
    const verifiedAt = T0 + MINUTE;
    const first = await store.activatePending(p.tokenHash, verifiedAt, (account) => {
      seen.push(account);
      return [event("created", verifiedAt)];
    });
    assert.equal(first?.outcome, "created");
    const account = first.outcome === "created" ? first.account : assert.fail();
    assert.deepEqual(account, { id: account.id, username: "juliet", createdAt: T0, hasMail: true, invitedBy: null });
    assert.deepEqual(seen, [account]);

    const second = await store.activatePending(p.tokenHash, verifiedAt + 1, () => assert.fail("events asked for twice"));
    assert.deepEqual(second, { outcome: "already-active", username: "juliet" });

    assert.equal(await store.findNameHolder("juliet", verifiedAt), "account");
    const login = await store.findLogin("juliet");
    assert.deepEqual(login, { id: account.id, username: "juliet", passwordHash: p.passwordHash });
    const queued = await claimAll(store, verifiedAt);
    assert.deepEqual(
      queued.map((i) => [i.kind, i.payload, i.userId]),
      [
        ["mail", "sealed-mail", account.id],
        ["event", "created", account.id],
      ],
    );
  });

  it("activatePending of an expired or unknown token creates nothing", async (store) => {
    const p = pending({ expiresAt: T0 + MINUTE });
    await insertOk(store, p);
    assert.equal(await store.activatePending(p.tokenHash, T0 + MINUTE, () => assert.fail("no events")), null);
    assert.equal(await store.activatePending("no-such-token", T0, () => assert.fail("no events")), null);
    assert.deepEqual(await store.listAccounts(), []);
    assert.equal(await store.findLogin(p.username), null);
  });

  it("of 20 concurrent registrations of one name exactly one succeeds", async (store) => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.insertPending(pending({ username: "contested" }), [mail()])),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
    assert.ok(results.every((r) => r.ok || r.conflict === "username"), "results.every((r) => r.ok || r.conflict === \"username\")");
    assert.equal(await store.outboxDepth(), 1);
  });

  it("of 20 concurrent registrations of one mail hash exactly one succeeds", async (store) => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.insertPending(pending({ mailHash: "contested" }), [])),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
    assert.ok(results.every((r) => r.ok || r.conflict === "mail"), "results.every((r) => r.ok || r.conflict === \"mail\")");
  });

  it("of 20 concurrent activations of one token exactly one creates the account", async (store, fixture) => {
    const p = pending({ username: "juliet" });
    await insertOk(store, p);
    const other = await fixture.connect();
    let asked = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? other : store).activatePending(p.tokenHash, T0 + 1, () => {
          asked += 1;
          return [event()];
        }),
      ),
    );
    assert.equal(results.filter((r) => r?.outcome === "created").length, 1);
    assert.equal(results.filter((r) => r?.outcome === "already-active").length, 19);
    assert.equal(asked, 1);
    assert.equal(await store.outboxDepth(), 1);
    assert.equal((await store.listAccounts()).length, 1);
  });

  it("listPending shows live registrations in creation order with the state of their latest mail", async (store) => {
    const none = pending({ username: "none", ip: "192.0.2.1", createdAt: T0 });
    const queued = pending({ username: "queued", createdAt: T0 + 1 });
    const sent = pending({ username: "sent", createdAt: T0 + 2 });
    const failed = pending({ username: "failed", createdAt: T0 + 3 });
    const expired = pending({ username: "expired", createdAt: T0, expiresAt: T0 + MINUTE });
    const active = pending({ username: "active", createdAt: T0 });
    const ids = new Map<string, number>();
    for (const p of [none, queued, sent, failed, expired, active]) {
      ids.set(p.username, await insertOk(store, p, p === none ? [event()] : [mail(p.username)]));
    }
    await store.activatePending(active.tokenHash, T0, () => []);
    for (const item of await claimAll(store)) {
      if (item.payload === "sent") await store.markOutboxSent(item.id, T0);
      if (item.payload === "failed") await store.markOutboxFailed(item.id, "550 no such user", T0);
    }
    const list = await store.listPending(T0 + MINUTE);
    assert.deepEqual(
      list.map((p) => [p.username, p.mailStatus]),
      [
        ["none", "none"],
        ["queued", "queued"],
        ["sent", "sent"],
        ["failed", "failed"],
      ],
    );
    assert.deepEqual(list[0], {
      id: ids.get("none"),
      username: "none",
      state: "pending",
      reason: null,
      ip: "192.0.2.1",
      createdAt: T0,
      expiresAt: none.expiresAt,
      mailStatus: "none",
      lang: null,
    });
  });

  it("deleteExpiredPending removes only expired pending registrations and their queued mail", async (store) => {
    const expired = pending({ expiresAt: T0 + MINUTE });
    const live = pending();
    await insertOk(store, expired, [mail("expired")]);
    await insertOk(store, live, [mail("live")]);
    await createAccount(store);
    assert.equal(await store.deleteExpiredPending(T0 + MINUTE), 1);
    assert.equal(await store.deleteExpiredPending(T0 + MINUTE), 0);
    assert.deepEqual(await store.findByTokenHash(live.tokenHash, T0), {
      state: "pending",
      username: live.username,
      expiresAt: live.expiresAt,
    });
    assert.equal((await store.listAccounts()).length, 1);
    assert.deepEqual((await claimAll(store, T0 + MINUTE)).map((i) => i.payload), ["live"]);
    // The expired registration's name and mail hash are free again.
    await insertOk(store, pending({ username: expired.username, mailHash: expired.mailHash, createdAt: T0 + MINUTE }));
  });
});

storeContract("resending the verification mail", (it) => {
  const plan = (tokenHash: string, payload = "sealed-new-mail") => () => ({ tokenHash, outbox: [mail(payload, T0 + 1)] });

  it("resendPending gives a new token, drops the queued old mail, queues the new one and counts up to the limit", async (store) => {
    const p = pending({ username: "juliet", mailHash: "juliet-mail" });
    await insertOk(store, p, [mail("old-mail")]);
    const seen: unknown[] = [];
    const result = await store.resendPending("juliet", T0 + 1, 2, (row) => {
      seen.push({ username: row.username, mailHash: row.mailHash, expiresAt: row.expiresAt, resends: row.resends, lang: row.lang });
      return plan("new-token")();
    });
    assert.deepEqual(result, { ok: true, resends: 1 });
    assert.deepEqual(seen, [{ username: "juliet", mailHash: "juliet-mail", expiresAt: p.expiresAt, resends: 0, lang: null }]);
    assert.equal(await store.findByTokenHash(p.tokenHash, T0 + 1), null, "the old token is gone");
    assert.deepEqual(await store.findByTokenHash("new-token", T0 + 1), { state: "pending", username: "juliet", expiresAt: p.expiresAt });
    assert.deepEqual((await claimAll(store, T0 + 1)).map((i) => i.payload), ["sealed-new-mail"], "only the new mail is left to send");

    assert.deepEqual(await store.resendPending("juliet", T0 + 2, 2, plan("newer-token")), { ok: true, resends: 2 });
    assert.deepEqual(await store.resendPending("juliet", T0 + 3, 2, plan("newest-token")), { ok: false, reason: "limit" });
    assert.notEqual(await store.findByTokenHash("newer-token", T0 + 3), null, "a refused resend leaves the last token working");
    assert.equal(await store.findByTokenHash("newest-token", T0 + 3), null);
  });

  it("resendPending refuses a mismatch, an expired, an active or an unknown registration and changes nothing", async (store) => {
    const p = pending({ username: "romeo", expiresAt: T0 + MINUTE });
    await insertOk(store, p, [mail("old-mail")]);
    await createAccount(store, { username: "active" });
    assert.deepEqual(await store.resendPending("romeo", T0, 3, () => null), { ok: false, reason: "mismatch" });
    assert.deepEqual(await store.resendPending("romeo", T0 + MINUTE, 3, plan("late")), { ok: false, reason: "no-pending" });
    assert.deepEqual(await store.resendPending("active", T0, 3, plan("x")), { ok: false, reason: "no-pending" });
    assert.deepEqual(await store.resendPending("nobody", T0, 3, plan("y")), { ok: false, reason: "no-pending" });
    assert.notEqual(await store.findByTokenHash(p.tokenHash, T0), null);
    assert.equal(await store.outboxDepth(), 1, "the old mail is still queued");
  });

  it("concurrent resends never pass the limit together", async (store) => {
    await insertOk(store, pending({ username: "crowd" }));
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => store.resendPending("crowd", T0 + 1, 2, plan(`t${i}`, `m${i}`))));
    assert.equal(results.filter((r) => r.ok).length, 2);
    assert.equal(results.filter((r) => !r.ok && r.reason === "limit").length, 4);
    assert.equal(await store.outboxDepth(), 1, "one mail waits: each new link dropped the one queued before it");
  });
});
