import { sql } from "kysely";
import type { Db, Q } from "./db.ts";
import { toOutboxItem } from "./rows.ts";
import type { NewOutboxItem, RequeueMailResult, Store } from "./store.ts";

/** Queues `items` for `userId`, due at once; part of the caller's transaction. */
export async function insertOutbox(q: Q, items: readonly NewOutboxItem[], userId: number | null): Promise<void> {
  for (const item of items) {
    await q
      .insertInto("outbox")
      .values({ kind: item.kind, user_id: userId, payload: item.payload, next_attempt_at: item.createdAt, created_at: item.createdAt })
      .execute();
  }
}

const ERROR_LENGTH = 500;

export function outboxStore(
  db: Db,
): Pick<Store, "claimOutbox" | "markOutboxSent" | "markOutboxRetry" | "markOutboxFailed" | "outboxDepth" | "requeuePendingMail"> {
  const { q } = db;
  return {
    async claimOutbox(now, leaseUntil, limit) {
      // Ordered by due time so the plan walks the partial index of queued rows (outbox_due); ordered
      // by id it scanned every row ever sent. An account's events keep their order by the EXISTS:
      // an earlier event stays 'queued' until its sender commits the outcome.
      const due = q
        .selectFrom("outbox as o")
        .select("o.id")
        .where("o.state", "=", sql.lit("queued"))
        .where("o.next_attempt_at", "<=", now)
        .where((eb) => eb.or([eb("o.lease_until", "is", null), eb("o.lease_until", "<=", now)]))
        .where((eb) =>
          eb.not(
            eb.and([
              eb("o.kind", "=", sql.lit("event")),
              eb.exists(
                eb
                  .selectFrom("outbox as e")
                  .select(sql.lit(1).as("one"))
                  .where("e.kind", "=", sql.lit("event"))
                  .where("e.state", "=", sql.lit("queued"))
                  .whereRef("e.user_id", "=", "o.user_id")
                  .whereRef("e.id", "<", "o.id"),
              ),
            ]),
          ),
        )
        .orderBy("o.next_attempt_at")
        .orderBy("o.id")
        .limit(limit)
        // SKIP LOCKED lets another instance's claim pass over rows this one is taking; a row it
        // meets just after that claim commits is re-checked against the new lease_until and left
        // out. SQLite has one writer at a time and no row locks.
        .$if(db.dialect === "postgres", (qb) => qb.forUpdate("o").skipLocked());
      const rows = await q
        .updateTable("outbox")
        .set((eb) => ({ lease_until: leaseUntil, attempts: eb("attempts", "+", 1) }))
        .where("id", "in", due)
        .returning(["id", "kind", "payload", "attempts", "user_id"])
        .execute();
      return rows.map(toOutboxItem).sort((a, b) => a.id - b.id);
    },

    async markOutboxSent(id, now) {
      // The payload held the address and the token; once sent it has no reason to exist.
      await q
        .updateTable("outbox")
        .set({ state: "sent", payload: null, lease_until: null, last_error: null, done_at: now })
        .where("id", "=", id)
        .execute();
    },

    async markOutboxRetry(id, nextAttemptAt, error) {
      await q
        .updateTable("outbox")
        .set({ next_attempt_at: nextAttemptAt, lease_until: null, last_error: error.slice(0, ERROR_LENGTH) })
        .where("id", "=", id)
        .execute();
    },

    async markOutboxFailed(id, error, now) {
      await q
        .updateTable("outbox")
        .set({ state: "failed", lease_until: null, last_error: error.slice(0, ERROR_LENGTH), done_at: now })
        .where("id", "=", id)
        .execute();
    },

    async outboxDepth() {
      const row = await q
        .selectFrom("outbox")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("state", "=", sql.lit("queued"))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },

    async requeuePendingMail(username, now) {
      return db.write(async (tx): Promise<RequeueMailResult> => {
        const user = await tx
          .selectFrom("users")
          .select("id")
          .where("username", "=", username)
          .where("state", "=", sql.lit("pending"))
          .where("expires_at", ">", now)
          .executeTakeFirst();
        if (!user) return { ok: false, reason: "no-pending" };
        const item = await tx
          .selectFrom("outbox")
          .select(["id", "state", "payload"])
          .where("user_id", "=", user.id)
          .where("kind", "=", sql.lit("mail"))
          .orderBy("id", "desc")
          .limit(1)
          // The row lock orders this against a sender recording an outcome for the same mail;
          // on SQLite the transaction holds the one write lock already.
          .$if(db.dialect === "postgres", (qb) => qb.forUpdate())
          .executeTakeFirst();
        if (!item) return { ok: false, reason: "no-mail" };
        if (item.state === "sent") return { ok: false, reason: "sent" };
        if (item.payload == null) return { ok: false, reason: "no-mail" };
        await tx
          .updateTable("outbox")
          .set((eb) => ({
            state: "queued",
            attempts: 0,
            next_attempt_at: now,
            last_error: null,
            done_at: null,
            // A lease still running is kept, so a send in flight is not doubled.
            lease_until: eb.case().when("lease_until", ">", now).then(eb.ref("lease_until")).else(null).end(),
          }))
          .where("id", "=", item.id)
          .execute();
        return { ok: true, previous: item.state };
      });
    },
  };
}
