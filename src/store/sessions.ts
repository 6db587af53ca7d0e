import { sql } from "kysely";
import { affected, type Db } from "./db.ts";
import type { Store } from "./store.ts";

export function sessionsStore(
  db: Db,
): Pick<Store, "insertSession" | "findSession" | "extendSession" | "deleteSession" | "deleteExpiredSessions"> {
  const { q } = db;
  return {
    async insertSession(tokenHash, userId, createdAt, expiresAt) {
      await q
        .insertInto("sessions")
        .values({ token_hash: tokenHash, user_id: userId, created_at: createdAt, expires_at: expiresAt })
        .execute();
    },

    async findSession(tokenHash, now) {
      const row = await q
        .selectFrom("sessions as s")
        .innerJoin("users as u", "u.id", "s.user_id")
        .select(["s.user_id", "s.expires_at", "u.username"])
        .where("s.token_hash", "=", tokenHash)
        .where("s.expires_at", ">", now)
        .where("u.state", "=", sql.lit("active"))
        .executeTakeFirst();
      return row ? { userId: row.user_id, username: row.username, expiresAt: row.expires_at } : null;
    },

    async extendSession(tokenHash, expiresAt) {
      await q.updateTable("sessions").set({ expires_at: expiresAt }).where("token_hash", "=", tokenHash).execute();
    },

    async deleteSession(tokenHash) {
      await q.deleteFrom("sessions").where("token_hash", "=", tokenHash).execute();
    },

    async deleteExpiredSessions(now) {
      return affected(await q.deleteFrom("sessions").where("expires_at", "<=", now).executeTakeFirst());
    },
  };
}
