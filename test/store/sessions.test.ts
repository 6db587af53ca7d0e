import assert from "node:assert/strict";
import { T0, MINUTE, DAY, createAccount, storeContract } from "./fixture.ts";

storeContract("sessions", (it) => {
  it("a session is found until it expires, and can be extended and deleted", async (store) => {
    const account = await createAccount(store, { username: "juliet" });
    await store.insertSession("s1", account.id, T0, T0 + MINUTE);
    assert.deepEqual(await store.findSession("s1", T0), { userId: account.id, username: "juliet", expiresAt: T0 + MINUTE });
    assert.equal(await store.findSession("s1", T0 + MINUTE), null);
    await store.extendSession("s1", T0 + 2 * MINUTE);
    assert.deepEqual(await store.findSession("s1", T0 + MINUTE), {
      userId: account.id,
      username: "juliet",
      expiresAt: T0 + 2 * MINUTE,
    });
    await store.deleteSession("s1");
    assert.equal(await store.findSession("s1", T0), null);
    assert.equal(await store.findSession("never", T0), null);
  });

  it("deleteExpiredSessions removes only expired sessions", async (store) => {
    const account = await createAccount(store);
    await store.insertSession("old", account.id, T0, T0 + MINUTE);
    await store.insertSession("new", account.id, T0, T0 + DAY);
    assert.equal(await store.deleteExpiredSessions(T0 + MINUTE), 1);
    assert.equal(await store.deleteExpiredSessions(T0 + MINUTE), 0);
    assert.equal(await store.findSession("old", T0), null);
    assert.ok(await store.findSession("new", T0 + MINUTE), "await store.findSession(\"new\", T0 + MINUTE)");
  });

  it("deleting an account deletes its sessions", async (store) => {
    const gone = await createAccount(store, { username: "gone" });
    const kept = await createAccount(store, { username: "kept" });
    await store.insertSession("gone-session", gone.id, T0, T0 + DAY);
    await store.insertSession("kept-session", kept.id, T0, T0 + DAY);
    await store.deleteAccount("gone");
    assert.equal(await store.findSession("gone-session", T0), null);
    assert.ok(await store.findSession("kept-session", T0), "await store.findSession(\"kept-session\", T0)");
    // Nothing of the deleted account's session is left to expire later.
    assert.equal(await store.deleteExpiredSessions(T0 + 2 * DAY), 1);
  });
});
