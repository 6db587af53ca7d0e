import assert from "node:assert/strict";
import { T0, pending, invite, insertOk, createAccount, storeContract, account } from "./fixture.ts";

storeContract("accounts", (it) => {
  it("listAccounts lists accounts by name with who invited them", async (store) => {
    await createAccount(store, { username: "zed" });
    await insertOk(store, pending({ username: "pending-only" }));
    const inv = invite({ issuerName: "alice", uses: 1 });
    await store.insertInvite(inv);
    const accepted = await store.acceptInvite(inv.tokenHash, T0, account("bob"), () => []);
    assert.equal(accepted.ok, true);
    const accounts = await store.listAccounts();
    assert.deepEqual(
      accounts.map((a) => [a.username, a.invitedBy, a.hasMail]),
      [
        ["bob", "alice", false],
        ["zed", null, true],
      ],
    );
    assert.ok(accounts.every((a) => Number.isInteger(a.id) && a.createdAt === T0), "accounts.every((a) => Number.isInteger(a.id) && a.createdAt === T0)");
  });

  it("deleteAccount removes the account and frees its name and mail hash", async (store) => {
    await createAccount(store, { username: "juliet", mailHash: "juliet-mail" });
    await insertOk(store, pending({ username: "pending-only" }));
    assert.equal(await store.deleteAccount("juliet"), true);
    assert.equal(await store.deleteAccount("juliet"), false);
    assert.equal(await store.deleteAccount("pending-only"), false, "a pending registration is not an account");
    assert.equal(await store.findNameHolder("pending-only", T0), "pending");
    assert.equal(await store.isMailHashHeld("juliet-mail", T0), false);
    assert.equal(await store.findLogin("juliet"), null);
    await insertOk(store, pending({ username: "juliet", mailHash: "juliet-mail" }));
  });

  it("an account id is never handed out again after the account is deleted", async (store) => {
    const first = await createAccount(store, { username: "first" });
    const newest = await createAccount(store, { username: "newest" });
    assert.equal(await store.deleteAccount("newest"), true);
    const next = await createAccount(store, { username: "next" });
    assert.ok(next.id > newest.id, `new id ${next.id} after deleted ${newest.id} (first ${first.id})`);
  });

  it("forgetTokensVerifiedBefore forgets only tokens of accounts verified before the cut-off", async (store) => {
    const early = pending();
    const late = pending();
    const waiting = pending();
    await insertOk(store, early);
    await insertOk(store, late);
    await insertOk(store, waiting);
    await store.activatePending(early.tokenHash, T0 + 1, () => []);
    await store.activatePending(late.tokenHash, T0 + 10, () => []);
    assert.equal(await store.forgetTokensVerifiedBefore(T0 + 10), 1);
    assert.equal(await store.forgetTokensVerifiedBefore(T0 + 10), 0);
    assert.equal(await store.findByTokenHash(early.tokenHash, T0 + 20), null);
    assert.deepEqual(await store.findByTokenHash(late.tokenHash, T0 + 20), { state: "active", username: late.username });
    assert.equal((await store.findByTokenHash(waiting.tokenHash, T0 + 20))?.state, "pending");
    assert.equal(await store.findNameHolder(early.username, T0 + 20), "account");
    assert.ok(await store.findLogin(early.username), "await store.findLogin(early.username)");
  });

  it("findLogin finds accounts, not pending registrations", async (store) => {
    await insertOk(store, pending({ username: "waiting" }));
    assert.equal(await store.findLogin("waiting"), null);
    assert.equal(await store.findLogin("nobody"), null);
  });
});
