import { sql } from "kysely";
import { uniqueViolation, type Db, type Q } from "./db.ts";
import { insertOutbox } from "./outbox.ts";
import { ACCOUNT_COLUMNS, toAccount, toPendingSummary, toTokenLookup } from "./rows.ts";
import type { ActivateResult, InsertPendingResult, Store } from "./store.ts";

/** Ids are deleted in batches of this many, padded, so that every batch is one and the same statement. */
const BATCH = 100;

/**
 * Deletes the pending registrations that ran out by `now` (only those holding `holding`'s name or
 * mail hash, when given) and their still queued mail: a voided registration's link must not go out.
 * Part of the caller's transaction; returns how many registrations went.
 */
export async function voidExpiredPending(q: Q, now: number, holding?: { username: string; mailHash?: string }): Promise<number> {
  const voided = await q
    .deleteFrom("users")
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", "<=", now)
    .$if(holding !== undefined, (qb) =>
      qb.where((eb) =>
        eb.or([
          eb("username", "=", holding!.username),
          ...(holding!.mailHash === undefined ? [] : [eb("mail_hash", "=", holding!.mailHash)]),
        ]),
      ),
    )
    .returning("id")
    .execute();
  const ids = voided.map((row) => row.id);
  for (let start = 0; start < ids.length; start += BATCH) {
    const batch = ids.slice(start, start + BATCH);
    while (batch.length < BATCH) batch.push(batch[0]!);
    await q.deleteFrom("outbox").where("kind", "=", sql.lit("mail")).where("state", "=", sql.lit("queued")).where("user_id", "in", batch).execute();
  }
  return ids.length;
}

export function pendingStore(
  db: Db,
): Pick<
  Store,
  "findNameHolder" | "isMailHashHeld" | "insertPending" | "findByTokenHash" | "activatePending" | "listPending" | "deleteExpiredPending"
> {
  const { q } = db;
  return {
    async findNameHolder(username, now) {
      const row = await q
        .selectFrom("users")
        .select("state")
        .where("username", "=", username)
        .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb("expires_at", ">", now)]))
        .executeTakeFirst();
      if (!row) return null;
      return row.state === "active" ? "account" : "pending";
    },

    async isMailHashHeld(mailHash, now) {
      const row = await q
        .selectFrom("users")
        .select("id")
        .where("mail_hash", "=", mailHash)
        .where((eb) => eb.or([eb("state", "=", sql.lit("active")), eb("expires_at", ">", now)]))
        .executeTakeFirst();
      return row !== undefined;
    },

    async insertPending(pending, outbox) {
      try {
        return await db.write(async (tx): Promise<InsertPendingResult> => {
          await voidExpiredPending(tx, pending.createdAt, pending);
          const { id } = await tx
            .insertInto("users")
            .values({
              username: pending.username,
              password_hash: pending.passwordHash,
              mail_hash: pending.mailHash,
              state: "pending",
              token_hash: pending.tokenHash,
              ip: pending.ip,
              created_at: pending.createdAt,
              expires_at: pending.expiresAt,
            })
            .returning("id")
            .executeTakeFirstOrThrow();
          await insertOutbox(tx, outbox, id);
          return { ok: true, id };
        });
      } catch (err) {
        const column = uniqueViolation(err);
        if (column === "username") return { ok: false, conflict: "username" };
        if (column === "mail_hash") return { ok: false, conflict: "mail" };
        throw err;
      }
    },

    async findByTokenHash(tokenHash, now) {
      const row = await q
        .selectFrom("users")
        .select(["username", "state", "expires_at"])
        .where("token_hash", "=", tokenHash)
        .executeTakeFirst();
      return toTokenLookup(row, now);
    },

    async activatePending(tokenHash, now, events) {
      return db.write(async (tx): Promise<ActivateResult | null> => {
        // On PostgreSQL a concurrent completion holds the row lock; once it commits, this UPDATE
        // re-checks state = 'pending' against the new row and matches nothing.
        const row = await tx
          .updateTable("users")
          .set({ state: "active", verified_at: now, expires_at: null, ip: null })
          .where("token_hash", "=", tokenHash)
          .where("state", "=", sql.lit("pending"))
          .where("expires_at", ">", now)
          .returning(ACCOUNT_COLUMNS)
          .executeTakeFirst();
        if (row) {
          const account = toAccount(row);
          await insertOutbox(tx, events(account), account.id);
          return { outcome: "created", account };
        }
        const active = await tx
          .selectFrom("users")
          .select("username")
          .where("token_hash", "=", tokenHash)
          .where("state", "=", sql.lit("active"))
          .executeTakeFirst();
        return active ? { outcome: "already-active", username: active.username } : null;
      });
    },

    async listPending(now) {
      const rows = await q
        .selectFrom("users as u")
        .select(["u.id", "u.username", "u.ip", "u.created_at", "u.expires_at"])
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
        .where("u.state", "=", sql.lit("pending"))
        .where("u.expires_at", ">", now)
        .orderBy("u.created_at")
        .orderBy("u.id")
        .execute();
      return rows.map(toPendingSummary);
    },

    async deleteExpiredPending(now) {
      return db.write((tx) => voidExpiredPending(tx, now));
    },
  };
}
