import { sql } from "kysely";
import { affected, query, type Db, type Dialect, type Q } from "./db.ts";
import { toOutboxItem, toProvisionJob } from "./rows.ts";
import type { NewOutboxItem, RequeueMailResult, Store } from "./store.ts";

const insertItem = query((q, p: Omit<NewOutboxItem, "target"> & { target: string | null; userId: number | null }) =>
  q
    .insertInto("outbox")
    .values({
      kind: p.kind,
      user_id: p.userId,
      target: p.target,
      payload: p.payload,
      next_attempt_at: p.createdAt,
      created_at: p.createdAt,
    }),
);

/** Queues `items` for `userId`, due when created; part of the caller's transaction. */
export async function insertOutbox(q: Q, items: readonly NewOutboxItem[], userId: number | null): Promise<void> {
  for (const item of items) await insertItem(q, { ...item, target: item.target ?? null, userId });
}

const ERROR_LENGTH = 500;

/**
 * Leases due items. Ordered by due time so the plan walks the partial index of queued rows
 * (outbox_due); ordered by id it scanned every row ever sent. An account's events keep their
 * order by the first EXISTS: an earlier event stays 'queued' until its sender commits the outcome.
 * They are held, by the second, while any of the account's provision jobs is not sent, so
 * user-registered goes out once the account exists on every target (DESIGN §9).
 */
const claim = (dialect: Dialect) =>
  query((q, p: { now: number; leaseUntil: number; limit: number }) =>
    q
      .updateTable("outbox")
      .set((eb) => ({ lease_until: p.leaseUntil, attempts: eb("attempts", "+", 1) }))
      .where("id", "in", (eb) =>
        eb
          .selectFrom("outbox as o")
          .select("o.id")
          .where("o.state", "=", sql.lit("queued"))
          .where("o.next_attempt_at", "<=", p.now)
          .where((eb) => eb.or([eb("o.lease_until", "is", null), eb("o.lease_until", "<=", p.now)]))
          .where((eb) =>
            eb.not(
              eb.and([
                eb("o.kind", "=", sql.lit("event")),
                eb.or([
                  eb.exists(
                    eb
                      .selectFrom("outbox as e")
                      .select(sql.lit(1).as("one"))
                      .where("e.kind", "=", sql.lit("event"))
                      .where("e.state", "=", sql.lit("queued"))
                      .whereRef("e.user_id", "=", "o.user_id")
                      .whereRef("e.id", "<", "o.id"),
                  ),
                  eb.exists(
                    eb
                      .selectFrom("outbox as j")
                      .select(sql.lit(1).as("one"))
                      .where("j.kind", "=", sql.lit("provision"))
                      .where("j.state", "<>", sql.lit("sent"))
                      .whereRef("j.user_id", "=", "o.user_id"),
                  ),
                ]),
              ]),
            ),
          )
          .orderBy("o.next_attempt_at")
          .orderBy("o.id")
          .limit(p.limit)
          // SKIP LOCKED lets another instance's claim pass over rows this one is taking; a row it
          // meets just after that claim commits is re-checked against the new lease_until and left
          // out. SQLite has one writer at a time and no row locks.
          .$if(dialect === "postgres", (qb) => qb.forUpdate("o").skipLocked()),
      )
      .returning(["id", "kind", "payload", "attempts", "user_id", "target"]),
  );
// The payload held the address and the token; once sent it has no reason to exist.
const markSent = query((q, p: { id: number; now: number }) =>
  q
    .updateTable("outbox")
    .set({ state: "sent", payload: null, lease_until: null, last_error: null, done_at: p.now })
    .where("id", "=", p.id),
);
const markRetry = query((q, p: { id: number; nextAttemptAt: number; error: string }) =>
  q.updateTable("outbox").set({ next_attempt_at: p.nextAttemptAt, lease_until: null, last_error: p.error }).where("id", "=", p.id),
);
const markFailed = query((q, p: { id: number; error: string; now: number }) =>
  q.updateTable("outbox").set({ state: "failed", lease_until: null, last_error: p.error, done_at: p.now }).where("id", "=", p.id),
);
const depth = query((q) =>
  q
    .selectFrom("outbox")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("state", "=", sql.lit("queued")),
);
const livePending = query((q, p: { username: string; now: number }) =>
  q
    .selectFrom("users")
    .select("id")
    .where("username", "=", p.username)
    .where("state", "=", sql.lit("pending"))
    .where("expires_at", ">", p.now),
);
const latestMail = (dialect: Dialect) =>
  query((q, p: { userId: number }) =>
    q
      .selectFrom("outbox")
      .select(["id", "state", "payload"])
      .where("user_id", "=", p.userId)
      .where("kind", "=", sql.lit("mail"))
      .orderBy("id", "desc")
      .limit(1)
      // The row lock orders this against a sender recording an outcome for the same mail;
      // on SQLite the transaction holds the one write lock already.
      .$if(dialect === "postgres", (qb) => qb.forUpdate()),
  );
const requeue = query((q, p: { id: number; now: number }) =>
  q
    .updateTable("outbox")
    .set((eb) => ({
      state: "queued",
      attempts: 0,
      next_attempt_at: p.now,
      last_error: null,
      done_at: null,
      // A lease still running is kept, so a send in flight is not doubled.
      lease_until: eb.case().when("lease_until", ">", p.now).then(eb.ref("lease_until")).else(null).end(),
    }))
    .where("id", "=", p.id),
);

// The latest job per account and target: a retried or re-made account shows its newest state.
const provisionJobs = (ofOne: boolean) =>
  query((q, p: { userId: number }) =>
    q
      .selectFrom("outbox as o")
      .select(["o.user_id", "o.target", "o.state", "o.last_error"])
      .where("o.kind", "=", sql.lit("provision"))
      .where("o.user_id", "is not", null)
      .$if(ofOne, (qb) => qb.where("o.user_id", "=", p.userId))
      .where("o.id", "=", (eb) =>
        eb
          .selectFrom("outbox as l")
          .select((eb) => eb.fn.max("l.id").as("latest"))
          .where("l.kind", "=", sql.lit("provision"))
          .whereRef("l.user_id", "=", "o.user_id")
          .whereRef("l.target", "=", "o.target"),
      )
      .orderBy("o.user_id")
      .orderBy("o.target"),
  );
const allProvisionJobs = provisionJobs(false);
const provisionJobsOf = provisionJobs(true);
const activeId = query((q, p: { username: string }) =>
  q.selectFrom("users").select("id").where("username", "=", p.username).where("state", "=", sql.lit("active")),
);
// A job whose payload was erased (the account was removed meanwhile) has nothing left to send.
const retryJobs = query((q, p: { userId: number; now: number }) =>
  q
    .updateTable("outbox")
    .set({ state: "queued", attempts: 0, next_attempt_at: p.now, done_at: null })
    .where("user_id", "=", p.userId)
    .where("kind", "=", sql.lit("provision"))
    .where("state", "in", ["queued", "failed"])
    .where("payload", "is not", null),
);
const provisionQueue = query((q) =>
  q
    .selectFrom("outbox")
    .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.min("created_at").as("oldest")])
    .where("kind", "=", sql.lit("provision"))
    .where("state", "=", sql.lit("queued")),
);

export function outboxStore(
  db: Db,
): Pick<
  Store,
  | "claimOutbox"
  | "markOutboxSent"
  | "markOutboxRetry"
  | "markOutboxFailed"
  | "outboxDepth"
  | "requeuePendingMail"
  | "listProvisionJobs"
  | "retryProvision"
  | "provisionQueue"
> {
  const claimDue = claim(db.dialect);
  const latestMailOf = latestMail(db.dialect);
  return {
    async claimOutbox(now, leaseUntil, limit) {
      const { rows } = await db.run("rerun", (q) => claimDue(q, { now, leaseUntil, limit }));
      return rows.map(toOutboxItem).sort((a, b) => a.id - b.id);
    },

    async markOutboxSent(id, now) {
      await db.run("rerun", (q) => markSent(q, { id, now }));
      // The payload may linger in SQLite's WAL until purgeErased.
      db.erased = true;
    },

    async markOutboxRetry(id, nextAttemptAt, error) {
      await db.run("rerun", (q) => markRetry(q, { id, nextAttemptAt, error: error.slice(0, ERROR_LENGTH) }));
    },

    async markOutboxFailed(id, error, now) {
      await db.run("rerun", (q) => markFailed(q, { id, error: error.slice(0, ERROR_LENGTH), now }));
    },

    async outboxDepth() {
      return Number((await db.run("rerun", (q) => depth(q, {}))).rows[0]!.n);
    },

    async requeuePendingMail(username, now) {
      return db.write(async (tx): Promise<RequeueMailResult> => {
        const [user] = (await livePending(tx, { username, now })).rows;
        if (!user) return { ok: false, reason: "no-pending" };
        const [item] = (await latestMailOf(tx, { userId: user.id })).rows;
        if (!item) return { ok: false, reason: "no-mail" };
        if (item.state === "sent") return { ok: false, reason: "sent" };
        if (item.payload == null) return { ok: false, reason: "no-mail" };
        await requeue(tx, { id: item.id, now });
        return { ok: true, previous: item.state };
        // A second run would report the mail it requeued as found queued.
      }, "unavailable");
    },

    async listProvisionJobs(userId) {
      const jobs = userId === undefined ? allProvisionJobs : provisionJobsOf;
      return (await db.run("rerun", (q) => jobs(q, { userId: userId ?? 0 }))).rows.map(toProvisionJob);
    },

    async retryProvision(username, now) {
      return db.write(async (tx): Promise<number | null> => {
        const [user] = (await activeId(tx, { username })).rows;
        if (!user) return null;
        return affected(await retryJobs(tx, { userId: user.id, now }));
        // A second run sets the same jobs due now with no attempts again, and counts them again;
        // one sent or failed by a sender in between is what an admin's retry a moment later would meet.
      }, "rerun");
    },

    async provisionQueue() {
      const row = (await db.run("rerun", (q) => provisionQueue(q, {}))).rows[0]!;
      return { depth: Number(row.n), oldestCreatedAt: row.oldest == null ? null : Number(row.oldest) };
    },
  };
}
