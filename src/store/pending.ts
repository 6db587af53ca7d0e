import { sql } from "kysely";
import { affected, query, uniqueViolation, type Db, type Dialect, type Q } from "./db.ts";
import { insertOutbox } from "./outbox.ts";
import { ACCOUNT_COLUMNS, toAccount, toHolder, toPendingSummary, toTokenLookup } from "./rows.ts";
import type { ActivateResult, InsertPendingResult, NewPending, ResendResult, Store } from "./store.ts";

/** Ids are deleted in batches of this many, padded, so that every batch is one and the same statement. */
const BATCH = 100;

const voidHolding = query((q, p: { now: number; username: string; mailHash: string | null }) =>
  q
    .deleteFrom("users")
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", "<=", p.now)
    .where((eb) => eb.or([eb("username", "=", p.username), eb("mail_hash", "=", p.mailHash)]))
    .returning("id"),
);
const voidAll = query((q, p: { now: number }) =>
  q.deleteFrom("users").where("state", "=", sql.lit("pending")).where("expires_at", "<=", p.now).returning("id"),
);

/**
 * Deletes the pending registrations that ran out by `now` (only one holding `holding`'s name or
 * mail hash, when given) and their still queued mail: a voided registration's link must not go out.
 * Part of the caller's transaction `q` on `db`; returns how many registrations went.
 */
export async function voidExpiredPending(
  db: Db,
  q: Q,
  now: number,
  holding?: { username: string; mailHash?: string },
): Promise<number> {
  const voided = holding
    ? await voidHolding(q, { now, username: holding.username, mailHash: holding.mailHash ?? null })
    : await voidAll(q, { now });
  const ids = voided.rows.map((row) => row.id);
  for (let start = 0; start < ids.length; start += BATCH) {
    const batch = ids.slice(start, start + BATCH);
    while (batch.length < BATCH) batch.push(batch[0]!);
    await q.deleteFrom("outbox").where("kind", "=", sql.lit("mail")).where("state", "=", sql.lit("queued")).where("user_id", "in", batch).execute();
  }
  // Their payloads may linger in SQLite's WAL until purgeErased.
  if (ids.length > 0) db.erased = true;
  return ids.length;
}

const nameHolder = query((q, p: { username: string; now: number }) =>
  q
    .selectFrom("users")
    .select("state")
    .where("username", "=", p.username)
    .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb("expires_at", ">", p.now)])),
);
// 'active' sorts before 'awaiting' before 'pending': an account wins, then one awaiting approval.
const skeletonHolder = query((q, p: { skeleton: string; now: number }) =>
  q
    .selectFrom("users")
    .select("state")
    .where("skeleton", "=", p.skeleton)
    .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb("expires_at", ">", p.now)]))
    .orderBy("state")
    .limit(1),
);
const mailHolder = query((q, p: { mailHash: string; now: number }) =>
  q
    .selectFrom("users")
    .select("id")
    .where("mail_hash", "=", p.mailHash)
    .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb("expires_at", ">", p.now)])),
);
const insertPending = query((q, p: NewPending & { sealedSecret: string | null; reason: string | null }) =>
  q
    .insertInto("users")
    .values({
      username: p.username,
      skeleton: p.skeleton,
      password_hash: p.passwordHash,
      mail_hash: p.mailHash,
      state: "pending",
      token_hash: p.tokenHash,
      ip: p.ip,
      created_at: p.createdAt,
      expires_at: p.expiresAt,
      sealed_secret: p.sealedSecret,
      reason: p.reason,
      lang: p.lang ?? null,
    })
    .returning("id"),
);
const idByTokenHash = query((q, p: { tokenHash: string }) => q.selectFrom("users").select("id").where("token_hash", "=", p.tokenHash));
const activatedAt = query((q, p: { tokenHash: string; now: number }) =>
  q
    .selectFrom("users")
    .select(ACCOUNT_COLUMNS)
    .where("token_hash", "=", p.tokenHash)
    .where("state", "=", sql.lit("active"))
    .where("verified_at", "=", p.now),
);
const byTokenHash = query((q, p: { tokenHash: string }) =>
  q.selectFrom("users").select(["username", "state", "expires_at"]).where("token_hash", "=", p.tokenHash),
);
// Written only with the pending row, so read before the UPDATE it is the row's as activated.
const sealedSecret = query((q, p: { tokenHash: string }) =>
  q.selectFrom("users").select("sealed_secret").where("token_hash", "=", p.tokenHash).where("state", "=", sql.lit("pending")),
);
// On PostgreSQL a concurrent completion holds the row lock; once it commits, this UPDATE
// re-checks state = 'pending' against the new row and matches nothing.
const activate = query((q, p: { tokenHash: string; now: number }) =>
  q
    .updateTable("users")
    .set({ state: "active", verified_at: p.now, expires_at: null, ip: null, sealed_secret: null })
    .where("token_hash", "=", p.tokenHash)
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", ">", p.now)
    .returning(ACCOUNT_COLUMNS),
);
// A token completed before: its account, or its registration still awaiting approval (DESIGN §11).
const completedByTokenHash = query((q, p: { tokenHash: string; now: number }) =>
  q
    .selectFrom("users")
    .select(["username", "state"])
    .where("token_hash", "=", p.tokenHash)
    .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb.and([eb("state", "=", sql.lit("awaiting")), eb("expires_at", ">", p.now)])])),
);
const listPending = query((q, p: { now: number }) =>
  q
    .selectFrom("users as u")
    .select(["u.id", "u.username", "u.state", "u.reason", "u.ip", "u.created_at", "u.expires_at", "u.lang"])
    .select((eb) =>
      eb
        .selectFrom("outbox as o")
        .select("o.state")
        .whereRef("o.user_id", "=", "u.id")
        .where("o.kind", "=", sql.lit("mail"))
        .orderBy("o.id", "desc")
        .limit(1)
        .as("mail_state"),
    )
    .where("u.state", "in", ["pending", "awaiting"])
    .where("u.expires_at", ">", p.now)
    .orderBy("u.created_at")
    .orderBy("u.id"),
);

const resendRow = (dialect: Dialect) =>
  query((q, p: { username: string; now: number }) =>
    q
      .selectFrom("users")
      .select(["id", "username", "mail_hash", "expires_at", "resend_count", "lang"])
      .where("username", "=", p.username)
      .where("state", "=", sql.lit("pending"))
      .where("expires_at", ">", p.now)
      // Orders two resends of one registration (and a completion) on PostgreSQL; SQLite's write lock does already.
      .$if(dialect === "postgres", (qb) => qb.forUpdate()),
  );
// The count is checked in the statement that raises it, so concurrent resends cannot pass the limit together.
const newToken = query((q, p: { id: number; tokenHash: string; limit: number; now: number }) =>
  q
    .updateTable("users")
    .set((eb) => ({ token_hash: p.tokenHash, resend_count: eb("resend_count", "+", 1) }))
    .where("id", "=", p.id)
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", ">", p.now)
    .where("resend_count", "<", p.limit)
    .returning("resend_count"),
);
// A mail not yet sent carries the old, now dead, link: it goes (a leased one in flight may still go out).
const dropQueuedMail = query((q, p: { userId: number }) =>
  q.deleteFrom("outbox").where("user_id", "=", p.userId).where("kind", "=", sql.lit("mail")).where("state", "=", sql.lit("queued")),
);

export function pendingStore(
  db: Db,
): Pick<
  Store,
  | "findNameHolder"
  | "findSkeletonHolder"
  | "isMailHashHeld"
  | "insertPending"
  | "findByTokenHash"
  | "activatePending"
  | "listPending"
  | "deleteExpiredPending"
  | "resendPending"
> {
  const { q } = db;
  const resendRowOf = resendRow(db.dialect);
  return {
    async findNameHolder(username, now) {
      return toHolder((await db.run("rerun", (q) => nameHolder(q, { username, now }))).rows[0]);
    },

    async findSkeletonHolder(skeleton, now) {
      return toHolder((await db.run("rerun", (q) => skeletonHolder(q, { skeleton, now }))).rows[0]);
    },

    async isMailHashHeld(mailHash, now) {
      return (await db.run("rerun", (q) => mailHolder(q, { mailHash, now }))).rows.length > 0;
    },

    async insertPending(pending, outbox) {
      try {
        return await db.write(
          async (tx): Promise<InsertPendingResult> => {
            await voidExpiredPending(db, tx, pending.createdAt, pending);
            const { id } = (await insertPending(tx, { ...pending, sealedSecret: pending.sealedSecret ?? null, reason: pending.reason ?? null })).rows[0]!;
            await insertOutbox(tx, outbox, id);
            return { ok: true, id };
          },
          // The token hash is new with this request: a row holding it is this transaction's commit.
          // A plain second run would instead meet its own row and answer "username pending" (409).
          async () => {
            const [row] = (await idByTokenHash(q, { tokenHash: pending.tokenHash })).rows;
            return row ? { ok: true, id: row.id } : null;
          },
        );
      } catch (err) {
        const column = uniqueViolation(err);
        if (column === "username") return { ok: false, conflict: "username" };
        if (column === "mail_hash") return { ok: false, conflict: "mail" };
        throw err;
      }
    },

    async findByTokenHash(tokenHash, now) {
      return toTokenLookup((await db.run("rerun", (q) => byTokenHash(q, { tokenHash }))).rows[0], now);
    },

    async activatePending(tokenHash, now, events) {
      return db.write(
        async (tx): Promise<ActivateResult | null> => {
          const [sealed] = (await sealedSecret(tx, { tokenHash })).rows;
          const [row] = (await activate(tx, { tokenHash, now })).rows;
          if (row) {
            const account = toAccount(row);
            const secret = sealed?.sealed_secret ?? null;
            // The secret may linger in SQLite's WAL until purgeErased.
            if (secret !== null) db.erased = true;
            await insertOutbox(tx, events(account, secret), account.id);
            return { outcome: "created", account };
          }
          const [done] = (await completedByTokenHash(tx, { tokenHash, now })).rows;
          if (!done) return null;
          return done.state === "active" ? { outcome: "already-active", username: done.username } : { outcome: "awaiting", username: done.username };
        },
        // Activated at exactly `now`, the account is this transaction's (a second run would say "already active").
        async () => {
          const [row] = (await activatedAt(q, { tokenHash, now })).rows;
          return row ? { outcome: "created", account: toAccount(row) } : null;
        },
      );
    },

    async listPending(now) {
      return (await db.run("rerun", (q) => listPending(q, { now }))).rows.map(toPendingSummary);
    },

    async resendPending(username, now, limit, plan) {
      return db.write(async (tx): Promise<ResendResult> => {
        const [row] = (await resendRowOf(tx, { username, now })).rows;
        if (!row) return { ok: false, reason: "no-pending" };
        const next = plan({
          id: row.id,
          username: row.username,
          mailHash: row.mail_hash,
          expiresAt: Number(row.expires_at),
          resends: Number(row.resend_count),
          lang: row.lang,
        });
        if (!next) return { ok: false, reason: "mismatch" };
        const [updated] = (await newToken(tx, { id: row.id, tokenHash: next.tokenHash, limit, now })).rows;
        if (!updated) return { ok: false, reason: "limit" };
        if (affected(await dropQueuedMail(tx, { userId: row.id })) > 0) db.erased = true;
        await insertOutbox(tx, next.outbox, row.id);
        return { ok: true, resends: Number(updated.resend_count) };
        // A second run would count the resend it made as one more: the caller hears "unavailable" instead.
      }, "unavailable");
    },

    async deleteExpiredPending(now) {
      // A second run finds nothing left to void.
      return db.write((tx) => voidExpiredPending(db, tx, now), "rerun");
    },
  };
}
