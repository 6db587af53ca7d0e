import { sql } from "kysely";
import { query, type Db, type Q } from "./db.ts";
import { insertOutbox } from "./outbox.ts";
import { ACCOUNT_COLUMNS, AWAITING_COLUMNS, toAccount, toAwaiting } from "./rows.ts";
import type { AccountSummary, AwaitApprovalResult, AwaitingRecord, AwaitingRef, Store } from "./store.ts";

// Manual approval (DESIGN §11). A registration awaiting approval is a users row in state
// 'awaiting': like a pending one it holds its name and mail hash until expires_at, and keeps its
// password hash and sealed secret; a moderator's decision makes it the account or deletes it.

// On PostgreSQL a concurrent completion holds the row lock; once it commits, this UPDATE re-checks
// state = 'pending' against the new row and matches nothing.
const awaitRow = query((q, p: { tokenHash: string; now: number; expiresAt: number; approvalTokenHash: string }) =>
  q
    .updateTable("users")
    .set({ state: "awaiting", verified_at: p.now, expires_at: p.expiresAt, approval_token_hash: p.approvalTokenHash })
    .where("token_hash", "=", p.tokenHash)
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", ">", p.now)
    .returning(AWAITING_COLUMNS),
);
const completedBefore = query((q, p: { tokenHash: string; now: number }) =>
  q
    .selectFrom("users")
    .select([...AWAITING_COLUMNS, "state", "verified_at"])
    .where("token_hash", "=", p.tokenHash)
    .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb.and([eb("state", "=", sql.lit("awaiting")), eb("expires_at", ">", p.now)])])),
);

const awaitingByName = query((q, p: { username: string; now: number }) =>
  q.selectFrom("users").select([...AWAITING_COLUMNS, "sealed_secret"]).where("username", "=", p.username).where("state", "=", sql.lit("awaiting")).where("expires_at", ">", p.now),
);
const awaitingByToken = query((q, p: { approvalTokenHash: string; now: number }) =>
  q
    .selectFrom("users")
    .select([...AWAITING_COLUMNS, "sealed_secret"])
    .where("approval_token_hash", "=", p.approvalTokenHash)
    .where("state", "=", sql.lit("awaiting"))
    .where("expires_at", ">", p.now),
);
// The decision is this one statement: of two moderators deciding at once, only one matches the row.
const approveById = query((q, p: { id: number; now: number }) =>
  q
    .updateTable("users")
    .set({ state: "active", expires_at: null, approval_token_hash: null, sealed_secret: null, reason: null, ip: null })
    .where("id", "=", p.id)
    .where("state", "=", sql.lit("awaiting"))
    .where("expires_at", ">", p.now)
    .returning(ACCOUNT_COLUMNS),
);
const rejectById = query((q, p: { id: number; now: number }) =>
  q.deleteFrom("users").where("id", "=", p.id).where("state", "=", sql.lit("awaiting")).where("expires_at", ">", p.now).returning("id"),
);
const expiredAwaiting = query((q, p: { now: number }) =>
  q
    .deleteFrom("users")
    .where("state", "=", sql.lit("awaiting"))
    .where("expires_at", "<=", p.now)
    .returning([...AWAITING_COLUMNS, "sealed_secret"]),
);
// A decided registration's moderator mail still waiting to go out carries links that no longer work.
const dropQueuedMail = query((q, p: { userId: number }) =>
  q.deleteFrom("outbox").where("user_id", "=", p.userId).where("kind", "=", sql.lit("mail")).where("state", "=", sql.lit("queued")),
);
const countAwaiting = query((q, p: { now: number }) =>
  q.selectFrom("users").select((eb) => eb.fn.countAll<number | string>().as("n")).where("state", "=", sql.lit("awaiting")).where("expires_at", ">", p.now),
);

async function findByRef(q: Q, ref: AwaitingRef, now: number) {
  const result = "username" in ref ? await awaitingByName(q, { username: ref.username, now }) : await awaitingByToken(q, { approvalTokenHash: ref.approvalTokenHash, now });
  return result.rows[0];
}

export function approvalStore(
  db: Db,
): Pick<Store, "awaitApproval" | "findAwaiting" | "approveAwaiting" | "rejectAwaiting" | "expireAwaiting" | "countAwaiting"> {
  const { q } = db;
  return {
    async awaitApproval(tokenHash, now, approval, items) {
      return db.write(
        async (tx): Promise<AwaitApprovalResult | null> => {
          const [row] = (await awaitRow(tx, { tokenHash, now, expiresAt: approval.expiresAt, approvalTokenHash: approval.approvalTokenHash })).rows;
          if (row) {
            const record = toAwaiting(row);
            await insertOutbox(tx, items(record), record.id);
            return { outcome: "awaiting", record, fresh: true };
          }
          const [done] = (await completedBefore(tx, { tokenHash, now })).rows;
          if (!done) return null;
          return done.state === "active" ? { outcome: "already-active", username: done.username } : { outcome: "awaiting", record: toAwaiting(done), fresh: false };
        },
        // Made to wait at exactly `now`, the row is this transaction's (a second run would say "already waiting").
        async () => {
          const [done] = (await completedBefore(q, { tokenHash, now })).rows;
          return done?.state === "awaiting" && done.verified_at === now ? { outcome: "awaiting", record: toAwaiting(done), fresh: true } : null;
        },
      );
    },

    async findAwaiting(ref, now) {
      const row = await db.run("rerun", (q) => findByRef(q, ref, now));
      return row ? toAwaiting(row) : null;
    },

    async approveAwaiting(ref, now, items) {
      return db.write(async (tx): Promise<AccountSummary | null> => {
        const found = await findByRef(tx, ref, now);
        if (!found) return null;
        const [row] = (await approveById(tx, { id: found.id, now })).rows;
        if (!row) return null;
        const account = toAccount(row);
        await dropQueuedMail(tx, { userId: account.id });
        // The sealed secret and the reason may linger in SQLite's WAL until purgeErased.
        db.erased = true;
        await insertOutbox(tx, items(account, found.sealed_secret, toAwaiting(found)), account.id);
        return account;
        // A second run would find the registration decided and answer "no such registration".
      }, "unavailable");
    },

    async rejectAwaiting(ref, now, items) {
      return db.write(async (tx): Promise<AwaitingRecord | null> => {
        const found = await findByRef(tx, ref, now);
        if (!found) return null;
        const [row] = (await rejectById(tx, { id: found.id, now })).rows;
        if (!row) return null;
        const record = toAwaiting(found);
        await dropQueuedMail(tx, { userId: record.id });
        db.erased = true;
        await insertOutbox(tx, items(record, found.sealed_secret), null);
        return record;
      }, "unavailable");
    },

    async expireAwaiting(now, items) {
      // A second run finds nothing left to expire.
      return db.write(async (tx) => {
        const rows = (await expiredAwaiting(tx, { now })).rows;
        for (const row of rows) {
          const record = toAwaiting(row);
          await dropQueuedMail(tx, { userId: record.id });
          await insertOutbox(tx, items(record, row.sealed_secret), null);
        }
        if (rows.length > 0) db.erased = true;
        return rows.length;
      }, "rerun");
    },

    async countAwaiting(now) {
      const [row] = (await db.run("rerun", (q) => countAwaiting(q, { now }))).rows;
      return Number(row?.n ?? 0);
    },
  };
}
