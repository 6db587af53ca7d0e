import { sql } from "kysely";
import { affected, query, type Db } from "./db.ts";
import type { Store } from "./store.ts";

const insertSession = query((q, p: { tokenHash: string; userId: number; createdAt: number; expiresAt: number }) =>
  q.insertInto("sessions").values({ token_hash: p.tokenHash, user_id: p.userId, created_at: p.createdAt, expires_at: p.expiresAt }),
);
const findSession = query((q, p: { tokenHash: string; now: number }) =>
  q
    .selectFrom("sessions as s")
    .innerJoin("users as u", "u.id", "s.user_id")
    .select(["s.user_id", "s.expires_at", "u.username"])
    .where("s.token_hash", "=", p.tokenHash)
    .where("s.expires_at", ">", p.now)
    .where("u.state", "=", sql.lit("active")),
);
const extendSession = query((q, p: { tokenHash: string; expiresAt: number }) =>
  q.updateTable("sessions").set({ expires_at: p.expiresAt }).where("token_hash", "=", p.tokenHash),
);
const deleteSession = query((q, p: { tokenHash: string }) => q.deleteFrom("sessions").where("token_hash", "=", p.tokenHash));
const deleteExpired = query((q, p: { now: number }) => q.deleteFrom("sessions").where("expires_at", "<=", p.now));

export function sessionsStore(
  db: Db,
): Pick<Store, "insertSession" | "findSession" | "extendSession" | "deleteSession" | "deleteExpiredSessions"> {
  return {
    async insertSession(tokenHash, userId, createdAt, expiresAt) {
      await db.run("once", (q) => insertSession(q, { tokenHash, userId, createdAt, expiresAt }));
    },

    async findSession(tokenHash, now) {
      const [row] = (await db.run("rerun", (q) => findSession(q, { tokenHash, now }))).rows;
      return row ? { userId: row.user_id, username: row.username, expiresAt: row.expires_at } : null;
    },

    async extendSession(tokenHash, expiresAt) {
      await db.run("rerun", (q) => extendSession(q, { tokenHash, expiresAt }));
    },

    async deleteSession(tokenHash) {
      await db.run("rerun", (q) => deleteSession(q, { tokenHash }));
    },

    async deleteExpiredSessions(now) {
      return affected(await db.run("rerun", (q) => deleteExpired(q, { now })));
    },
  };
}
