import assert from "node:assert/strict";
import { uniqueViolation } from "../../src/store/db.ts";
import type { AccountSummary } from "../../src/store/store.ts";
import { T0, MINUTE, pending, event, invite, insertOk, createAccount, claimAll, storeContract, account } from "./fixture.ts";

storeContract("invites", (it) => {
  it("an inserted invite is found by its token hash and by its handle", async (store) => {
    const inv = invite({ issuerKind: "key", issuerId: "k1", issuerName: "bot", username: "reserved", uses: 3 });
    const record = await store.insertInvite(inv);
    assert.deepEqual(record, {
      id: record.id,
      handle: inv.handle,
      issuerKind: "key",
      issuerId: "k1",
      issuerName: "bot",
      username: "reserved",
      usesTotal: 3,
      usesLeft: 3,
      createdAt: inv.createdAt,
      expiresAt: inv.expiresAt,
      revokedAt: null,
    });
    assert.ok(Number.isInteger(record.id), "Number.isInteger(record.id)");
    assert.deepEqual(await store.findInviteByTokenHash(inv.tokenHash), record);
    assert.deepEqual(await store.findInviteByHandle(inv.handle), record);
    assert.equal(await store.findInviteByTokenHash("nope"), null);
    assert.equal(await store.findInviteByHandle("nope"), null);
  });

  it("invites inserted at the same time are each stored, and one that cannot be is refused alone", async (store) => {
    // On SQLite these share one commit (a group commit); the one whose handle is taken must not undo the others.
    const invites = [invite(), invite(), invite(), invite()];
    const taken = { ...invite(), handle: invites[1]!.handle };
    const sent = [...invites.slice(0, 2), taken, ...invites.slice(2)];
    const settled = await Promise.allSettled(sent.map((inv) => store.insertInvite(inv)));
    const refused = settled.flatMap((s, i) => (s.status === "rejected" ? [{ i, reason: s.reason as unknown }] : []));
    // SQLite makes a group's rows in call order, so the second of the two is refused; PostgreSQL's
    // pool runs them side by side, and either may come second.
    assert.equal(refused.length, 1);
    assert.ok(store.kind === "sqlite" ? refused[0]!.i === 2 : [1, 2].includes(refused[0]!.i), `refused: ${refused[0]!.i}`);
    assert.equal(uniqueViolation(refused[0]!.reason), "handle");
    const stored = settled.filter((s) => s.status === "fulfilled").map((s) => s.value);
    assert.deepEqual(stored.map((r) => r.handle).sort(), invites.map((i) => i.handle).sort());
    const ids = stored.map((r) => r.id);
    assert.deepEqual((await store.listInvites()).map((i) => i.id).sort((a, b) => a - b), [...ids].sort((a, b) => a - b));
    if (store.kind === "sqlite") assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.equal(await store.findInviteByTokenHash(sent[refused[0]!.i]!.tokenHash), null);
  });

  it("listInvites lists in creation order and revokeInvite revokes once", async (store) => {
    const second = await store.insertInvite(invite({ createdAt: T0 + 1 }));
    const first = await store.insertInvite(invite({ createdAt: T0 }));
    assert.deepEqual((await store.listInvites()).map((i) => i.id), [first.id, second.id]);
    assert.equal(await store.revokeInvite(first.id, T0 + 5), true);
    assert.equal(await store.revokeInvite(first.id, T0 + 6), false);
    assert.equal(await store.revokeInvite(first.id + second.id + 100, T0), false);
    assert.equal((await store.findInviteByHandle(first.handle))?.revokedAt, T0 + 5);
    assert.equal((await store.findInviteByHandle(second.handle))?.revokedAt, null);
  });

  it("accepting an invite creates an account invited by its issuer and uses one use", async (store) => {
    const inv = invite({ issuerName: "alice", uses: 2 });
    await store.insertInvite(inv);
    const seen: AccountSummary[] = [];
    const result = await store.acceptInvite(inv.tokenHash, T0 + 1, account("bob", "bob-hash"), (a) => {
      seen.push(a);
      return [event("joined", T0 + 1)];
    });
    if (!result.ok) assert.fail(`accept refused: ${result.reason}`);
    assert.deepEqual(result.account, {
      id: result.account.id,
      username: "bob",
      createdAt: T0 + 1,
      hasMail: false,
      invitedBy: "alice",
    });
    assert.deepEqual(seen, [result.account]);
    assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 1);
    assert.deepEqual(await store.findLogin("bob"), { id: result.account.id, username: "bob", passwordHash: "bob-hash" });
    assert.deepEqual(
      (await claimAll(store, T0 + 1)).map((i) => [i.kind, i.payload, i.userId]),
      [["event", "joined", result.account.id]],
    );
  });

  it("an invite that is used up, expired or revoked is gone", async (store) => {
    const used = invite({ uses: 1 });
    const expiring = invite({ expiresAt: T0 + MINUTE });
    const revoked = invite();
    await store.insertInvite(used);
    await store.insertInvite(expiring);
    const revokedRecord = await store.insertInvite(revoked);
    await store.revokeInvite(revokedRecord.id, T0);
    const accept = (tokenHash: string, username: string, now = T0) =>
      store.acceptInvite(tokenHash, now, account(username), () => [event()]);

    assert.equal((await accept(used.tokenHash, "first")).ok, true);
    assert.deepEqual(await accept(used.tokenHash, "second"), { ok: false, reason: "gone" });
    assert.deepEqual(await accept(expiring.tokenHash, "third", T0 + MINUTE), { ok: false, reason: "gone" });
    assert.deepEqual(await accept(revoked.tokenHash, "fourth"), { ok: false, reason: "gone" });
    assert.deepEqual(await accept("no-such-invite", "fifth"), { ok: false, reason: "gone" });
    assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["first"]);
    assert.equal(await store.outboxDepth(), 1);
    assert.equal((await store.findInviteByTokenHash(expiring.tokenHash))?.usesLeft, 1);
    assert.equal((await store.findInviteByTokenHash(revoked.tokenHash))?.usesLeft, 1);
  });

  it("a taken name leaves the invite's uses unchanged", async (store) => {
    await createAccount(store, { username: "account" });
    await insertOk(store, pending({ username: "waiting" }));
    const inv = invite({ uses: 1 });
    await store.insertInvite(inv);
    for (const username of ["account", "waiting"]) {
      const result = await store.acceptInvite(inv.tokenHash, T0, account(username), () => [event()]);
      assert.deepEqual(result, { ok: false, reason: "username-taken" });
    }
    assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 1);
    assert.equal(await store.outboxDepth(), 0);
    assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["account"]);
  });

  it("an expired pending registration does not keep its name from an invited account", async (store) => {
    const old = pending({ username: "juliet", expiresAt: T0 + MINUTE });
    await insertOk(store, old);
    const inv = invite();
    await store.insertInvite(inv);
    const result = await store.acceptInvite(inv.tokenHash, T0 + MINUTE, account("juliet"), () => []);
    assert.equal(result.ok, true);
    assert.equal(await store.findByTokenHash(old.tokenHash, T0), null);
  });

  it("of 20 concurrent accepts of a one-use invite exactly one wins", async (store, fixture) => {
    const inv = invite({ uses: 1 });
    await store.insertInvite(inv);
    const other = await fixture.connect();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? other : store).acceptInvite(inv.tokenHash, T0, account(`guest${i}`), () => [
          event(),
        ]),
      ),
    );
    assert.equal(results.filter((r) => r.ok).length, 1);
    assert.equal(results.filter((r) => !r.ok && r.reason === "gone").length, 19);
    assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 0);
    assert.equal((await store.listAccounts()).length, 1);
    assert.equal(await store.outboxDepth(), 1);
  });
});
