import assert from "node:assert/strict";
import { sql } from "kysely";
import { MIGRATIONS } from "../../src/store/migrations/index.ts";
import { inviteLineage } from "../../src/store/migrations/011-invite-lineage.ts";
import { recordStep } from "../../src/store/migrations/types.ts";
import type { AccountLineage, Store } from "../../src/store/store.ts";
import { account, createAccount, DAY, event, invite, storeContract, T0 } from "./fixture.ts";

// DESIGN §11: who invited each account (kept when the inviter goes), and the per-account invite quota.

/** An account made with an invite from `issuer` (an account, an API key or the command line). */
async function invitedBy(store: Store, username: string, issuer: { kind: "user"; id: number; name: string } | { kind: "key"; name: string } | { kind: "admin" }, at = T0) {
  const inv = invite({
    issuerKind: issuer.kind,
    issuerId: issuer.kind === "user" ? `u${issuer.id}` : issuer.kind === "key" ? "k1" : "admin",
    issuerName: issuer.kind === "admin" ? "the administrators" : issuer.name,
  });
  await store.insertInvite(inv);
  const result = await store.acceptInvite(inv.tokenHash, at, account(username), () => [event()]);
  if (!result.ok) assert.fail(`accepting ${username}'s invite was refused: ${result.reason}`);
  return result.account;
}

const lineageOf = (accounts: AccountLineage[]) =>
  accounts.map((a) => [a.username, a.inviterKind, a.inviterId, a.invitedBy, a.inviterDeleted] as const);

storeContract("invite lineage", (it, makeStore) => {
  it("an account made from an invite records its inviter: an account by id and name, a key by name, the command line as admin", async (store) => {
    const ada = await createAccount(store, { username: "ada" });
    const ben = await invitedBy(store, "ben", { kind: "user", id: ada.id, name: "ada" }, T0 + 1);
    await invitedBy(store, "kim", { kind: "key", name: "Partner site" }, T0 + 2);
    await invitedBy(store, "zed", { kind: "admin" }, T0 + 3);
    await invitedBy(store, "cal", { kind: "user", id: ben.id, name: "ben" }, T0 + 4);
    assert.deepEqual(lineageOf(await store.listLineage()), [
      ["ada", null, null, null, false],
      ["ben", "user", ada.id, "ada", false],
      ["cal", "user", ben.id, "ben", false],
      ["kim", "key", null, "Partner site", false],
      ["zed", "admin", null, "admin", false],
    ]);
  });

  it("listLineage(root) is the root and everyone below it, all the way down, and nobody else", async (store) => {
    const ada = await createAccount(store, { username: "ada" });
    const ben = await invitedBy(store, "ben", { kind: "user", id: ada.id, name: "ada" }, T0 + 1);
    const cal = await invitedBy(store, "cal", { kind: "user", id: ben.id, name: "ben" }, T0 + 2);
    await invitedBy(store, "dan", { kind: "user", id: cal.id, name: "cal" }, T0 + 3);
    await invitedBy(store, "eve", { kind: "user", id: ada.id, name: "ada" }, T0 + 4);
    await createAccount(store, { username: "fay" });
    assert.deepEqual((await store.listLineage("ben")).map((a) => a.username), ["ben", "cal", "dan"]);
    assert.deepEqual((await store.listLineage("ada")).map((a) => a.username), ["ada", "ben", "cal", "dan", "eve"], "oldest first");
    assert.deepEqual((await store.listLineage("fay")).map((a) => a.username), ["fay"]);
    assert.deepEqual(await store.listLineage("nobody"), []);
  });

  it("a deleted inviter's invitees keep its name, and a newcomer under that name is not their inviter", async (store) => {
    const ada = await createAccount(store, { username: "ada" });
    await invitedBy(store, "ben", { kind: "user", id: ada.id, name: "ada" }, T0 + 1);
    assert.ok(await store.removeAccount("ada", T0 + 2, () => []));
    const newcomer = await createAccount(store, { username: "ada" }, T0 + 3);
    assert.notEqual(newcomer.id, ada.id, "ids are not handed out again");
    assert.deepEqual(lineageOf(await store.listLineage()), [
      ["ada", null, null, null, false],
      ["ben", "user", null, "ada", true],
    ]);
    assert.deepEqual((await store.listLineage("ada")).map((a) => a.username), ["ada"]);
  });

  it("insertInviteWithinQuota inserts while fewer than max of the issuer's invites are newer than since, and refuses with the counted ones after", async (store) => {
    const ada = await createAccount(store, { username: "ada" });
    const bob = await createAccount(store, { username: "bob" });
    const mine = (createdAt: number) => invite({ issuerKind: "user", issuerId: `u${ada.id}`, issuerName: "ada", createdAt });
    // Not counted: older than the window, another account's, a key's.
    await store.insertInvite(mine(T0 - 8 * DAY));
    await store.insertInvite(invite({ issuerKind: "user", issuerId: `u${bob.id}`, issuerName: "bob", createdAt: T0 }));
    await store.insertInvite(invite({ issuerKind: "key", issuerId: `u${ada.id}`, issuerName: "look-alike key id", createdAt: T0 }));
    const quota = { userId: ada.id, since: T0 - 7 * DAY, max: 2 };
    const first = await store.insertInviteWithinQuota(mine(T0 - DAY), quota);
    const second = await store.insertInviteWithinQuota(mine(T0), quota);
    assert.equal(first.ok, true);
    assert.equal(second.ok, true);
    const before = (await store.listInvites()).length;
    assert.deepEqual(await store.insertInviteWithinQuota(mine(T0 + 1), quota), { ok: false, reason: "quota", counted: [T0, T0 - DAY] });
    assert.equal((await store.listInvites()).length, before, "a refused invite is not stored");
    // Six days later the first has left the window: it is counted only while newer than since.
    assert.equal((await store.insertInviteWithinQuota(mine(T0 + 6 * DAY), { ...quota, since: T0 - DAY })).ok, true);
    assert.deepEqual(await store.insertInviteWithinQuota(mine(T0), { ...quota, max: 0 }), { ok: false, reason: "quota", counted: [] });
    assert.ok(await store.removeAccount("ada", T0, () => []));
    assert.deepEqual(await store.insertInviteWithinQuota(mine(T0), quota), { ok: false, reason: "no-account" });
  });

  it("revokeLiveInvitesOf withdraws only the account's invites that could still be used", async (store) => {
    const live = await store.insertInvite(invite({ issuerKind: "user", issuerId: "u5" }));
    const expired = await store.insertInvite(invite({ issuerKind: "user", issuerId: "u5", expiresAt: T0 }));
    const revoked = await store.insertInvite(invite({ issuerKind: "user", issuerId: "u5" }));
    await store.revokeInvite(revoked.id, T0 - 1);
    const others = [
      await store.insertInvite(invite({ issuerKind: "user", issuerId: "u6" })),
      await store.insertInvite(invite({ issuerKind: "key", issuerId: "u5" })),
    ];
    assert.equal(await store.revokeLiveInvitesOf("u5", T0), 1);
    assert.equal((await store.findInviteByHandle(live.handle))?.revokedAt, T0);
    assert.equal((await store.findInviteByHandle(expired.handle))?.revokedAt, null);
    assert.equal((await store.findInviteByHandle(revoked.handle))?.revokedAt, T0 - 1);
    for (const other of others) assert.equal((await store.findInviteByHandle(other.handle))?.revokedAt, null);
    assert.equal(await store.revokeLiveInvitesOf("u5", T0), 0);
  });

  it("concurrent invites of one account from two instances never pass the quota together", async (store, fixture) => {
    const ada = await createAccount(store, { username: "ada" });
    const other = await fixture.connect();
    const quota = { userId: ada.id, since: T0 - DAY, max: 3 };
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 === 0 ? store : other).insertInviteWithinQuota(invite({ issuerKind: "user", issuerId: `u${ada.id}`, issuerName: "ada" }), quota),
      ),
    );
    assert.equal(results.filter((r) => r.ok).length, 3);
    assert.equal((await store.listInvites()).length, 3);
  });

  it("migration 011 gives accounts invited before it their inviter from their invite", async () => {
    const fixture = await makeStore({ migrated: false });
    try {
      const dialect = fixture.store.kind;
      await fixture.inspect(async (q) => {
        await q.schema.createTable("gatehouse_migrations").addColumn("name", "text", (c) => c.primaryKey()).addColumn("applied_at", "bigint", (c) => c.notNull()).execute();
        for (const step of MIGRATIONS.slice(0, MIGRATIONS.indexOf(inviteLineage))) {
          await step.up(q, dialect);
          await recordStep(q, step.name);
        }
        await sql`INSERT INTO users (id, username, skeleton, password_hash, state, created_at) VALUES (41, 'ada', 'ada', 'h', 'active', ${T0})`.execute(q);
        await sql`INSERT INTO invites (id, handle, token_hash, issuer_kind, issuer_id, issuer_name, uses_total, uses_left, created_at, expires_at)
          VALUES (1, 'h1', 't1', 'user', 'u41', 'ada', 1, 0, ${T0}, ${T0 + DAY}), (2, 'h2', 't2', 'admin', 'admin', 'the administrators', 1, 0, ${T0}, ${T0 + DAY}),
                 (3, 'h3', 't3', 'key', 'k9', 'Partner site', 1, 0, ${T0}, ${T0 + DAY})`.execute(q);
        await sql`INSERT INTO users (id, username, skeleton, password_hash, state, created_at, invited_by, invite_id) VALUES
          (42, 'ben', 'ben', 'h', 'active', ${T0 + 1}, 'ada', 1), (43, 'zed', 'zed', 'h', 'active', ${T0 + 2}, 'the administrators', 2),
          (44, 'kim', 'kim', 'h', 'active', ${T0 + 3}, 'Partner site', 3)`.execute(q);
      });
      await fixture.store.migrate();
      assert.deepEqual(lineageOf(await fixture.store.listLineage()), [
        ["ada", null, null, null, false],
        ["ben", "user", 41, "ada", false],
        ["kim", "key", null, "Partner site", false],
        ["zed", "admin", null, "admin", false],
      ]);
    } finally {
      await fixture.dispose();
    }
  });
});
