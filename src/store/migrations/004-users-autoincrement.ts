import { sql } from "kysely";
import { createUsersIndexes } from "./001-core.ts";
import type { Migration } from "./types.ts";

const COLUMNS = [
  "id", "username", "password_hash", "mail_hash", "state", "token_hash", "ip",
  "created_at", "expires_at", "verified_at", "invited_by", "invite_id",
] as const;

/**
 * Account ids go out in events: AUTOINCREMENT keeps SQLite from handing a deleted account's id
 * to the next one (a PostgreSQL sequence never does). SQLite cannot alter that in place, so the
 * table is rebuilt; the runner turns foreign keys off meanwhile, or dropping the old table would
 * take every session with it.
 */
export const usersAutoincrement: Migration = {
  name: "004-users-autoincrement",
  async up(db, dialect) {
    if (dialect !== "sqlite") return;
    await db.schema
      .createTable("users_new")
      .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
      .addColumn("username", "text", (c) => c.notNull().unique())
      .addColumn("password_hash", "text", (c) => c.notNull())
      .addColumn("mail_hash", "text", (c) => c.unique())
      .addColumn("state", "text", (c) => c.notNull().check(sql`state IN ('pending', 'active')`))
      .addColumn("token_hash", "text", (c) => c.unique())
      .addColumn("ip", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint")
      .addColumn("verified_at", "bigint")
      .addColumn("invited_by", "text")
      .addColumn("invite_id", "bigint")
      .execute();
    await db.insertInto("users_new").columns(COLUMNS).expression(db.selectFrom("users").select(COLUMNS)).execute();
    await db.schema.dropTable("users").execute();
    await db.schema.alterTable("users_new").renameTo("users").execute();
    await createUsersIndexes(db);
  },
};
