import assert from "node:assert/strict";
import type { AccountSummary, NewOutboxItem, Store } from "../../src/store/store.ts";
import { T0, MINUTE, DAY, pending, event, job, invite, account, insertOk, claimAll, storeContract } from "./fixture.ts";

/** Registers and verifies `username`, queuing `items` (and handing back the sealed secret) on activation. */
async function activateWith(
  store: Store,
  username: string,
  items: NewOutboxItem[],
  sealedSecret: string | null = null,
): Promise<{ account: AccountSummary; handed: (string | null)[] }> {
  const p = pending({ username, sealedSecret });
  await insertOk(store, p);
  const handed: (string | null)[] = [];
  const result = await store.activatePending(p.tokenHash, T0, (_, secret) => {
    handed.push(secret);
    return items;
  });
  if (result?.outcome !== "created") assert.fail(`activation of ${username} did not create an account`);
  return { account: result.account, handed };
}

storeContract("provisioning", (it) => {
  it("activatePending hands the sealed secret to the jobs once and erases it from the row in the same transaction", async (store, fixture) => {
    const p = pending({ username: "sealed", sealedSecret: "sealed-password" });
    await insertOk(store, p);
    const stored = () => fixture.inspect(async (q) => (await q.selectFrom("users").select("sealed_secret").where("username", "=", "sealed").execute())[0]);
    assert.equal((await stored())?.sealed_secret, "sealed-password", "held while pending");

    const handed: (string | null)[] = [];
    const events = (_: AccountSummary, secret: string | null) => {
      handed.push(secret);
      return [job("xmpp", `job-with-${secret}`)];
    };
    assert.equal((await store.activatePending(p.tokenHash, T0, events))?.outcome, "created");
    assert.equal((await stored())?.sealed_secret, null, "erased once the account exists");
    assert.equal((await store.activatePending(p.tokenHash, T0 + 1, events))?.outcome, "already-active");
    assert.deepEqual(handed, ["sealed-password"], "a second activation gets no secret and queues nothing");
    assert.deepEqual((await claimAll(store)).map((i) => [i.kind, i.target, i.payload]), [["provision", "xmpp", "job-with-sealed-password"]]);
  });

  it("a registration without a sealed secret hands null to the jobs", async (store) => {
    const { handed } = await activateWith(store, "plain", []);
    assert.deepEqual(handed, [null]);
  });

  it("an account's events are held while any of its provision jobs is unsent, failed ones too", async (store) => {
    const { account: held } = await activateWith(store, "held", [job("xmpp"), job("ldap"), event("registered")]);
    await activateWith(store, "other", [event("other-registered")]);

    const first = await claimAll(store);
    assert.deepEqual(
      first.map((i) => [i.kind, i.target, i.payload, i.userId]),
      [
        ["provision", "xmpp", "sealed-job-xmpp", held.id],
        ["provision", "ldap", "sealed-job-ldap", held.id],
        ["event", null, "other-registered", first[2]!.userId],
      ],
      "another account's event is not held",
    );
    await store.markOutboxSent(first[0]!.id, T0);
    await store.markOutboxFailed(first[1]!.id, "ldap: 49 invalid credentials", T0);
    await store.markOutboxSent(first[2]!.id, T0);
    assert.deepEqual(await claimAll(store, T0 + 2 * MINUTE), [], "a failed job holds the event back still");

    assert.equal(await store.retryProvision("held", T0 + 3 * MINUTE), 1);
    const retried = await claimAll(store, T0 + 3 * MINUTE);
    assert.deepEqual(retried.map((i) => [i.target, i.attempts]), [["ldap", 1]], "retried with attempts reset; the event still waits");
    await store.markOutboxSent(retried[0]!.id, T0 + 3 * MINUTE);
    assert.deepEqual((await claimAll(store, T0 + 3 * MINUTE)).map((i) => i.payload), ["registered"], "every job sent: the event goes out");
  });

  it("listProvisionJobs shows the latest job per account and target, of one account or of all", async (store) => {
    // A job queued with the pending registration, failed, then a newer one for the same target on activation.
    const p = pending({ username: "ann" });
    await insertOk(store, p, [job("xmpp", "old")]);
    const [old] = await claimAll(store);
    await store.markOutboxFailed(old!.id, "unreachable", T0);
    const activated = await store.activatePending(p.tokenHash, T0, () => [job("xmpp", "new"), job("ldap")]);
    if (activated?.outcome !== "created") assert.fail("ann was not activated");
    const ann = activated.account;
    const { account: bob } = await activateWith(store, "bob", [job("xmpp")]);
    const [annLdap] = (await claimAll(store, T0 + 1)).filter((i) => i.userId === ann.id && i.target === "ldap");
    await store.markOutboxFailed(annLdap!.id, "taken", T0 + 1);

    assert.deepEqual(await store.listProvisionJobs(ann.id), [
      { userId: ann.id, target: "ldap", state: "failed", lastError: "taken" },
      { userId: ann.id, target: "xmpp", state: "queued", lastError: null },
    ]);
    assert.deepEqual(
      (await store.listProvisionJobs()).map((j) => [j.userId, j.target, j.state]),
      [
        [ann.id, "ldap", "failed"],
        [ann.id, "xmpp", "queued"],
        [bob.id, "xmpp", "queued"],
      ],
    );
    assert.deepEqual(await store.listProvisionJobs(bob.id + 1000), []);
  });

  it("removeAccount deletes the account, voids its unsent jobs and queued events, and queues the remove jobs", async (store) => {
    const { account: gone } = await activateWith(store, "gone", [job("xmpp"), job("ldap"), job("http"), event("gone-registered")]);
    const [xmpp, ldap] = await claimAll(store);
    await store.markOutboxSent(xmpp!.id, T0);
    await store.markOutboxFailed(ldap!.id, "unreachable", T0);
    // http stays leased, as a sender in flight holds it.
    await store.insertSession("gone-session", gone.id, T0, T0 + DAY);

    const removed = await store.removeAccount("gone", T0 + MINUTE, (a) => [job("xmpp", `remove-${a.username}`, T0 + MINUTE)]);
    assert.deepEqual(removed, gone);
    assert.deepEqual(await store.listAccounts(), []);
    assert.equal(await store.findSession("gone-session", T0), null, "its sessions went with it");
    assert.equal(await store.findNameHolder("gone", T0 + MINUTE), null, "the name is free again");
    assert.deepEqual(await store.listProvisionJobs(gone.id), [
      { userId: gone.id, target: "http", state: "failed", lastError: "account removed" },
      { userId: gone.id, target: "ldap", state: "failed", lastError: "unreachable" },
      { userId: gone.id, target: "xmpp", state: "sent", lastError: null },
    ]);
    assert.equal(await store.retryProvision("gone", T0 + MINUTE), null, "no account left to retry for");
    assert.deepEqual(
      (await claimAll(store, T0 + 2 * MINUTE)).map((i) => [i.kind, i.target, i.payload, i.userId]),
      [["provision", "xmpp", "remove-gone", null]],
      "only the remove job is due: the voided jobs and the queued event are not",
    );
    assert.deepEqual(await store.listProvisionJobs(), await store.listProvisionJobs(gone.id), "the remove job belongs to no account");
  });

  it("removeAccount of an unknown name or a pending registration removes nothing and queues nothing", async (store) => {
    await insertOk(store, pending({ username: "waiting" }));
    let asked = 0;
    const jobs = () => {
      asked += 1;
      return [job("xmpp")];
    };
    assert.equal(await store.removeAccount("nobody", T0, jobs), null);
    assert.equal(await store.removeAccount("waiting", T0, jobs), null);
    assert.equal(asked, 0);
    assert.equal(await store.findNameHolder("waiting", T0), "pending");
    assert.equal((await store.provisionQueue()).depth, 0);
  });

  it("removeAccount with restoreInvite gives the invite its use back; without it the use stays spent", async (store) => {
    const inv = await store.insertInvite(invite({ tokenHash: "inv-token", uses: 2 }));
    for (const name of ["kim", "lou"]) {
      const accepted = await store.acceptInvite("inv-token", T0, account(name), () => []);
      assert.equal(accepted.ok, true);
    }
    assert.equal((await store.findInviteByHandle(inv.handle))?.usesLeft, 0);
    await store.removeAccount("kim", T0, () => []);
    assert.equal((await store.findInviteByHandle(inv.handle))?.usesLeft, 0, "an account removed on purpose keeps the use spent");
    await store.removeAccount("lou", T0, () => [], { restoreInvite: true });
    assert.equal((await store.findInviteByHandle(inv.handle))?.usesLeft, 1, "the account never came to be: the use is back");
    const again = await store.acceptInvite("inv-token", T0, account("max"), () => []);
    assert.equal(again.ok, true, "the restored use takes a new account");
    assert.equal((await store.findInviteByHandle(inv.handle))?.usesLeft, 0);

    const { account: plain } = await activateWith(store, "ola", []);
    assert.deepEqual(await store.removeAccount("ola", T0, () => [], { restoreInvite: true }), plain, "an account with no invite is removed all the same");
  });

  it("retryProvision makes queued and failed jobs due now with attempts reset, and leaves sent ones", async (store) => {
    await activateWith(store, "rae", [job("a", "a", T0 + DAY), job("b"), job("c")]);
    const [b, c] = await claimAll(store);
    await store.markOutboxFailed(b!.id, "unreachable", T0);
    await store.markOutboxSent(c!.id, T0);
    assert.equal(await store.retryProvision("rae", T0 + MINUTE), 2);
    const due = await store.claimOutbox(T0 + MINUTE, T0 + 2 * MINUTE, 10);
    assert.deepEqual(due.map((i) => [i.target, i.attempts]), [["a", 1], ["b", 1]]);
    assert.equal(await store.retryProvision("nobody", T0), null);
    await insertOk(store, pending({ username: "pat" }));
    assert.equal(await store.retryProvision("pat", T0), null, "a pending registration has no jobs to retry");
  });

  it("provisionQueue counts queued provision jobs and tells when the oldest was queued", async (store) => {
    assert.deepEqual(await store.provisionQueue(), { depth: 0, oldestCreatedAt: null });
    await activateWith(store, "sue", [job("a", "a", T0 + 5), job("b", "b", T0 + 9), event("sue-registered", T0 + 1)]);
    await activateWith(store, "tom", [job("a", "tom-a", T0 + 2)]);
    assert.deepEqual(await store.provisionQueue(), { depth: 3, oldestCreatedAt: T0 + 2 });
    const claimed = await claimAll(store, T0 + 10);
    assert.deepEqual(await store.provisionQueue(), { depth: 3, oldestCreatedAt: T0 + 2 }, "a job a sender holds is still waiting");
    const byPayload = (payload: string) => claimed.find((i) => i.payload === payload)!.id;
    await store.markOutboxSent(byPayload("tom-a"), T0 + 10);
    await store.markOutboxFailed(byPayload("a"), "unreachable", T0 + 10);
    assert.deepEqual(await store.provisionQueue(), { depth: 1, oldestCreatedAt: T0 + 9 }, "sent and failed jobs no longer wait");
  });
});
