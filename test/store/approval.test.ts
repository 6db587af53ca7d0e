import assert from "node:assert/strict";
import type { AwaitingRecord, Store } from "../../src/store/store.ts";
import { T0, MINUTE, DAY, pending, mail, event, invite, account, insertOk, claimAll, storeContract, type StoreFixture } from "./fixture.ts";

const WAIT = 14 * DAY;

/** Registers `username` (with a reason and a sealed secret) and verifies it into the wait for approval at T0. */
async function awaiting(store: Store, username: string, approvalTokenHash = `approval-${username}`) {
  const p = pending({ username, mailHash: `mail-${username}`, reason: `I am ${username}`, sealedSecret: `sealed-${username}` });
  await insertOk(store, p, [mail(`verify-${username}`)]);
  const result = await store.awaitApproval(p.tokenHash, T0, { expiresAt: T0 + WAIT, approvalTokenHash }, (record) => [mail(`moderators-${record.username}`)]);
  if (result?.outcome !== "awaiting" || !result.fresh) assert.fail(`${username} did not start waiting for approval`);
  return { p, record: result.record };
}

async function row(fixture: StoreFixture, username: string) {
  return fixture.inspect(async (q) =>
    (await q.selectFrom("users").select(["state", "reason", "sealed_secret", "approval_token_hash", "expires_at"]).where("username", "=", username).execute())[0],
  );
}

storeContract("manual approval", (it) => {
  it("a verified registration awaiting approval holds its name and mail hash, cannot log in, and is listed with its reason", async (store) => {
    const { p, record } = await awaiting(store, "wendy");
    assert.deepEqual({ ...record, id: 0 }, { id: 0, username: "wendy", reason: "I am wendy", createdAt: T0, expiresAt: T0 + WAIT, invitedBy: null, lang: null });
    assert.equal(await store.findNameHolder("wendy", T0 + DAY * 2), "awaiting", "held past the verification's own expiry");
    assert.equal(await store.isMailHashHeld("mail-wendy", T0 + DAY * 2), true);
    assert.equal(await store.findLogin("wendy"), null, "no login while waiting");
    assert.deepEqual(await store.listAccounts(), []);
    const [listed] = await store.listPending(T0 + DAY * 2);
    assert.deepEqual([listed?.username, listed?.state, listed?.reason], ["wendy", "awaiting", "I am wendy"]);
    assert.deepEqual(await store.findByTokenHash(p.tokenHash, T0), { state: "awaiting", username: "wendy" });
    assert.equal(await store.countAwaiting(T0), 1);
    assert.equal(await store.findNameHolder("wendy", T0 + WAIT), null, "free once the wait ran out");
    assert.equal(await store.countAwaiting(T0 + WAIT), 0);
  });

  it("a second completion of the token answers 'awaiting' and queues nothing; activatePending does not make the account", async (store) => {
    const { p } = await awaiting(store, "xena");
    const again = await store.awaitApproval(p.tokenHash, T0 + 1, { expiresAt: T0 + WAIT, approvalTokenHash: "other" }, () => [mail("twice")]);
    assert.equal(again?.outcome, "awaiting");
    assert.equal(again?.outcome === "awaiting" && again.fresh, false);
    assert.deepEqual(await store.activatePending(p.tokenHash, T0 + 1, () => [event("registered")]), { outcome: "awaiting", username: "xena" });
    assert.deepEqual((await claimAll(store, T0 + 1)).map((i) => i.payload), ["verify-xena", "moderators-xena"]);
    assert.equal(await store.awaitApproval("unknown-token", T0, { expiresAt: T0 + WAIT, approvalTokenHash: "x" }, () => []), null);
  });

  it("approval by the moderator token makes the account once, hands the sealed secret over and erases reason, token and secret", async (store, fixture) => {
    await awaiting(store, "yara");
    const handed: (string | null)[] = [];
    const approve = () =>
      store.approveAwaiting({ approvalTokenHash: "approval-yara" }, T0 + DAY, (account, sealed) => {
        handed.push(sealed);
        return [mail(`approved-${account.username}`), event("user-approved")];
      });
    const made = await approve();
    assert.equal(made?.username, "yara");
    assert.equal(await approve(), null, "the link works once");
    assert.deepEqual(handed, ["sealed-yara"]);
    assert.deepEqual(await row(fixture, "yara"), { state: "active", reason: null, sealed_secret: null, approval_token_hash: null, expires_at: null });
    assert.equal((await store.findLogin("yara"))?.username, "yara");
    assert.equal(await store.findNameHolder("yara", T0 + 2 * WAIT), "account");
    const items = await claimAll(store, T0 + DAY);
    assert.deepEqual(items.map((i) => [i.payload, i.userId]), [["approved-yara", made!.id], ["user-approved", made!.id]], "a decided registration's unsent verify and moderator mails are dropped");
  });

  it("rejection by name deletes the registration, frees the name and the mail hash, and queues the items without an account", async (store) => {
    const { record } = await awaiting(store, "zora");
    let seen: AwaitingRecord | null = null;
    const rejected = await store.rejectAwaiting({ username: "zora" }, T0 + MINUTE, (r, sealed) => {
      seen = r;
      return [mail(`rejected-${r.username}-${sealed}`)];
    });
    assert.deepEqual(rejected, record);
    assert.deepEqual(seen, record);
    assert.equal(await store.findNameHolder("zora", T0 + MINUTE), null);
    assert.equal(await store.isMailHashHeld("mail-zora", T0 + MINUTE), false);
    assert.equal(await store.rejectAwaiting({ username: "zora" }, T0 + MINUTE, () => [mail("twice")]), null);
    assert.equal(await store.approveAwaiting({ approvalTokenHash: "approval-zora" }, T0 + MINUTE, () => []), null, "a rejected registration cannot be approved after");
    assert.deepEqual((await claimAll(store, T0 + MINUTE)).map((i) => [i.payload, i.userId]), [["rejected-zora-sealed-zora", null]]);
  });

  it("an expired wait cannot be decided; expireAwaiting removes only the expired ones and queues their items", async (store) => {
    await awaiting(store, "old");
    const later = pending({ username: "new", mailHash: "mail-new" });
    await insertOk(store, later);
    assert.equal((await store.awaitApproval(later.tokenHash, T0 + MINUTE, { expiresAt: T0 + MINUTE + WAIT, approvalTokenHash: "approval-new" }, () => []))?.outcome, "awaiting");
    const at = T0 + WAIT;
    assert.equal(await store.findAwaiting({ approvalTokenHash: "approval-old" }, at), null);
    assert.equal(await store.approveAwaiting({ username: "old" }, at, () => []), null);
    const expired: string[] = [];
    assert.equal(await store.expireAwaiting(at, (r, sealed) => {
      expired.push(`${r.username}:${sealed}`);
      return [mail(`expired-${r.username}`)];
    }), 1);
    assert.deepEqual(expired, ["old:sealed-old"]);
    assert.equal(await store.expireAwaiting(at, () => [mail("twice")]), 0);
    assert.equal(await store.countAwaiting(at), 1);
    assert.equal((await store.findAwaiting({ approvalTokenHash: "approval-new" }, at))?.username, "new");
    assert.deepEqual((await claimAll(store, at)).map((i) => i.payload), ["expired-old"]);
  });

  it("of concurrent approvals and rejections of one registration exactly one decides", async (store, fixture) => {
    await awaiting(store, "contested");
    const other = await fixture.connect();
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        i % 2
          ? (i % 4 === 1 ? other : store).approveAwaiting({ approvalTokenHash: "approval-contested" }, T0 + 1, () => [event("approved")]).then((a) => (a ? "approved" : null))
          : (i % 4 === 0 ? other : store).rejectAwaiting({ username: "contested" }, T0 + 1, () => [event("rejected")]).then((r) => (r ? "rejected" : null)),
      ),
    );
    assert.equal(outcomes.filter((o) => o !== null).length, 1, outcomes.join(","));
    assert.equal(await store.outboxDepth(), 1, "the unsent verify and moderator mails were dropped; one decision's item remains");
  });

  it("an invite accepted for approval uses the invite and waits, holding the name, with who invited", async (store) => {
    const inv = invite({ issuerName: "alice" });
    await store.insertInvite(inv);
    const result = await store.acceptInviteAwaiting(
      inv.tokenHash,
      T0,
      { ...account("guest"), awaiting: { expiresAt: T0 + WAIT, approvalTokenHash: "approval-guest", reason: "a friend", sealedSecret: "sealed-guest" } },
      (record) => [mail(`moderators-${record.username}`)],
    );
    assert.equal(result.ok, true);
    assert.deepEqual(result.ok && { ...result.awaiting, id: 0 }, { id: 0, username: "guest", reason: "a friend", createdAt: T0, expiresAt: T0 + WAIT, invitedBy: "alice", lang: null });
    assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 0);
    assert.equal(await store.findNameHolder("guest", T0), "awaiting");
    assert.equal(await store.findLogin("guest"), null);
    const again = await store.acceptInviteAwaiting(inv.tokenHash, T0, { ...account("guest2"), awaiting: { expiresAt: T0 + WAIT, approvalTokenHash: "x", reason: null, sealedSecret: null } }, () => []);
    assert.deepEqual(again, { ok: false, reason: "gone" });
    const approved = await store.approveAwaiting({ approvalTokenHash: "approval-guest" }, T0 + 1, () => []);
    assert.deepEqual([approved?.username, approved?.invitedBy], ["guest", "alice"]);
  });
});
