import { sql } from "kysely";
import { affected, groupCommitted, query, uniqueViolation, type Db, type Tx } from "./db.ts";
import { insertOutbox } from "./outbox.ts";
import { voidExpiredPending } from "./pending.ts";
import { ACCOUNT_COLUMNS, AWAITING_COLUMNS, toAccount, toAwaiting, toInvite } from "./rows.ts";
import type { IssuerKind, NewAccount, NewAwaiting, NewInvite, NewOutboxItem, QuotaInsertResult, Store } from "./store.ts";

const insertInvite = query((q, p: NewInvite) =>
  q
    .insertInto("invites")
    .values({
      handle: p.handle,
      token_hash: p.tokenHash,
      issuer_kind: p.issuerKind,
      issuer_id: p.issuerId,
      issuer_name: p.issuerName,
      username: p.username,
      uses_total: p.uses,
      uses_left: p.uses,
      created_at: p.createdAt,
      expires_at: p.expiresAt,
    })
    .returningAll(),
);
const byTokenHash = query((q, p: { tokenHash: string }) => q.selectFrom("invites").selectAll().where("token_hash", "=", p.tokenHash));
const byHandle = query((q, p: { handle: string }) => q.selectFrom("invites").selectAll().where("handle", "=", p.handle));
const listInvites = query((q) => q.selectFrom("invites").selectAll().orderBy("created_at").orderBy("id"));
const revokeInvite = query((q, p: { id: number; now: number }) =>
  q.updateTable("invites").set({ revoked_at: p.now }).where("id", "=", p.id).where("revoked_at", "is", null),
);
const revokeLiveInvitesOf = query((q, p: { issuerId: string; now: number }) =>
  q
    .updateTable("invites")
    .set({ revoked_at: p.now })
    .where("issuer_kind", "=", sql.lit("user"))
    .where("issuer_id", "=", p.issuerId)
    .where("revoked_at", "is", null)
    .where("uses_left", ">", 0)
    .where("expires_at", ">", p.now),
);
// On PostgreSQL the row lock taken here makes concurrent accepts of one invite queue; each
// re-checks uses_left > 0 against the committed row, so a one-use invite has exactly one winner.
const useInvite = query((q, p: { tokenHash: string; now: number }) =>
  q
    .updateTable("invites")
    .set((eb) => ({ uses_left: eb("uses_left", "-", 1) }))
    .where("token_hash", "=", p.tokenHash)
    .where("uses_left", ">", 0)
    .where("revoked_at", "is", null)
    .where("expires_at", ">", p.now)
    .returning(["id", "issuer_kind", "issuer_id", "issuer_name"]),
);
const insertInvited = query((q, p: NewAccount & Made) =>
  q
    .insertInto("users")
    .values({
      username: p.username,
      skeleton: p.skeleton,
      password_hash: p.passwordHash,
      state: "active",
      created_at: p.now,
      verified_at: p.now,
      invited_by: p.invitedBy,
      invite_id: p.inviteId,
      inviter_kind: p.inviterKind,
      inviter_id: p.inviterId,
      lang: p.lang ?? null,
    })
    .returning(ACCOUNT_COLUMNS),
);

// With invites.requireApproval the invited person waits for a moderator (DESIGN §11) instead.
const insertInvitedAwaiting = query((q, p: NewAccount & NewAwaiting & Made) =>
  q
    .insertInto("users")
    .values({
      username: p.username,
      skeleton: p.skeleton,
      password_hash: p.passwordHash,
      state: "awaiting",
      created_at: p.now,
      verified_at: p.now,
      expires_at: p.expiresAt,
      approval_token_hash: p.approvalTokenHash,
      reason: p.reason,
      sealed_secret: p.sealedSecret,
      lang: p.lang ?? null,
      invited_by: p.invitedBy,
      invite_id: p.inviteId,
      inviter_kind: p.inviterKind,
      inviter_id: p.inviterId,
    })
    .returning(AWAITING_COLUMNS),
);
const awaitingAs = query((q, p: { username: string; passwordHash: string }) =>
  q
    .selectFrom("users")
    .select(AWAITING_COLUMNS)
    .where("username", "=", p.username)
    .where("password_hash", "=", p.passwordHash)
    .where("state", "=", sql.lit("awaiting")),
);

const acceptedAs = query((q, p: { username: string; passwordHash: string }) =>
  q
    .selectFrom("users")
    .select(ACCOUNT_COLUMNS)
    .where("username", "=", p.username)
    .where("password_hash", "=", p.passwordHash)
    .where("state", "=", sql.lit("active")),
);

// The quota's count: one account's invites since a time, newest first, as many as the quota allows.
const recentInvitesOf = query((q, p: { issuerId: string; since: number; max: number }) =>
  q
    .selectFrom("invites")
    .select("created_at")
    .where("issuer_kind", "=", sql.lit("user"))
    .where("issuer_id", "=", p.issuerId)
    .where("created_at", ">", p.since)
    .orderBy("created_at", "desc")
    .limit(p.max),
);
// Concurrent invites of one account queue here on PostgreSQL, so each counts the others' rows;
// SQLite's write transactions (BEGIN IMMEDIATE) queue anyway.
const lockAccount = query((q, p: { userId: number }) =>
  q.selectFrom("users").select("id").where("id", "=", p.userId).where("state", "=", sql.lit("active")).forUpdate(),
);
const findAccount = query((q, p: { userId: number }) =>
  q.selectFrom("users").select("id").where("id", "=", p.userId).where("state", "=", sql.lit("active")),
);

/** The inviter an account made with this invite records (DESIGN §11): an account by its id, the command line as "admin". */
function inviterOf(invite: { issuer_kind: IssuerKind; issuer_id: string; issuer_name: string }): { inviterKind: IssuerKind; inviterId: number | null; invitedBy: string } {
  const userId = invite.issuer_kind === "user" && /^u\d+$/.test(invite.issuer_id) ? Number(invite.issuer_id.slice(1)) : null;
  return { inviterKind: invite.issuer_kind, inviterId: userId, invitedBy: invite.issuer_kind === "admin" ? "admin" : invite.issuer_name };
}

/** Thrown inside acceptInvite's transaction to roll it back, so the invite keeps its use. */
class NameTaken extends Error {}

type Made = { now: number; invitedBy: string; inviteId: number; inviterKind: IssuerKind; inviterId: number | null };

export function invitesStore(
  db: Db,
): Pick<Store, "insertInvite" | "insertInviteWithinQuota" | "findInviteByTokenHash" | "findInviteByHandle" | "listInvites" | "revokeInvite" | "revokeLiveInvitesOf" | "acceptInvite" | "acceptInviteAwaiting"> {
  const { q } = db;
  // The invites_api's 201s, made many at a time, share their commits on SQLite; on PostgreSQL each
  // runs once (a second run after a lost connection would make a second invite).
  const insertInviteGrouped = groupCommitted(db, insertInvite);

  /**
   * Uses one of a live invite's uses and inserts the row `insert` makes in one transaction; a taken
   * name rolls it back, so the invite keeps its use.
   */
  async function accept<T extends { id: number; username: string }>(
    tokenHash: string,
    now: number,
    username: string,
    insert: (tx: Tx, made: Made) => Promise<T>,
    items: (made: T) => NewOutboxItem[],
    ownCommit: () => Promise<T | null>,
  ): Promise<{ ok: true; made: T } | { ok: false; reason: "gone" | "username-taken" }> {
    try {
      return await db.write(
        async (tx): Promise<{ ok: true; made: T } | { ok: false; reason: "gone" }> => {
          const [invite] = (await useInvite(tx, { tokenHash, now })).rows;
          if (!invite) return { ok: false, reason: "gone" };
          // A pending registration that has run out no longer holds its name.
          await voidExpiredPending(db, tx, now, { username });
          let made: T;
          try {
            made = await insert(tx, { now, inviteId: invite.id, ...inviterOf(invite) });
          } catch (err) {
            if (uniqueViolation(err) === "username") throw new NameTaken();
            throw err;
          }
          await insertOutbox(tx, items(made), made.id);
          return { ok: true, made };
        },
        async () => {
          const made = await ownCommit();
          return made ? { ok: true, made } : null;
        },
      );
    } catch (err) {
      if (err instanceof NameTaken) return { ok: false, reason: "username-taken" };
      throw err;
    }
  }

  return {
    async insertInvite(invite) {
      return toInvite((await insertInviteGrouped(invite)).rows[0]!);
    },

    async insertInviteWithinQuota(invite, quota) {
      return db.write(async (tx): Promise<QuotaInsertResult> => {
        const lock = db.dialect === "postgres" ? lockAccount : findAccount;
        if ((await lock(tx, { userId: quota.userId })).rows.length === 0) return { ok: false, reason: "no-account" };
        const recent = quota.max > 0 ? (await recentInvitesOf(tx, { issuerId: invite.issuerId, since: quota.since, max: quota.max })).rows : [];
        if (recent.length >= quota.max) return { ok: false, reason: "quota", counted: recent.map((r) => r.created_at) };
        return { ok: true, invite: toInvite((await insertInvite(tx, invite)).rows[0]!) };
        // A second run after an unknown COMMIT would count the invite it made and may refuse it.
      }, "unavailable");
    },

    async findInviteByTokenHash(tokenHash) {
      const [row] = (await db.run("rerun", (q) => byTokenHash(q, { tokenHash }))).rows;
      return row ? toInvite(row) : null;
    },

    async findInviteByHandle(handle) {
      const [row] = (await db.run("rerun", (q) => byHandle(q, { handle }))).rows;
      return row ? toInvite(row) : null;
    },

    async listInvites() {
      return (await db.run("rerun", (q) => listInvites(q, {}))).rows.map(toInvite);
    },

    async revokeLiveInvitesOf(issuerId, now) {
      // A second run finds them revoked and counts none: the count of the first is lost with its answer.
      return affected(await db.run("rerun", (q) => revokeLiveInvitesOf(q, { issuerId, now })));
    },

    async revokeInvite(id, now) {
      // A second run would report the invite it revoked as already revoked.
      return affected(await db.run("once", (q) => revokeInvite(q, { id, now }))) > 0;
    },

    async acceptInvite(tokenHash, now, account, events) {
      return accept(
        tokenHash,
        now,
        account.username,
        async (tx, made) => toAccount((await insertInvited(tx, { ...account, ...made })).rows[0]!),
        events,
        // The password hash is salted afresh for this request: an account holding it is this
        // transaction's commit. A plain second run would find the name taken (409) or the invite used (410).
        async () => {
          const [row] = (await acceptedAs(q, account)).rows;
          return row ? toAccount(row) : null;
        },
      ).then((result) => (result.ok ? { ok: true, account: result.made } : result));
    },

    async acceptInviteAwaiting(tokenHash, now, account, items) {
      return accept(
        tokenHash,
        now,
        account.username,
        async (tx, made) => toAwaiting((await insertInvitedAwaiting(tx, { ...account, ...account.awaiting, ...made })).rows[0]!),
        items,
        async () => {
          const [row] = (await awaitingAs(q, account)).rows;
          return row ? toAwaiting(row) : null;
        },
      ).then((result) => (result.ok ? { ok: true, awaiting: result.made } : result));
    },
  };
}
