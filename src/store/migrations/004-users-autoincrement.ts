import { sql } from "kysely";
import { createUsersIndexes } from "./001-core.ts";
import type { Migration } from "./types.ts";

/**
 * Account ids go out in events: AUTOINCREMENT keeps SQLite from handing a deleted account's id
 * to the next one (a PostgreSQL sequence never does). SQLite cannot alter that in place, so the
 * table is rebuilt from its own definition with the keyword added; the runner turns foreign keys
 * off meanwhile, or dropping the old table would take every session with it.
 */
export const usersAutoincrement: Migration = {
  name: "004-users-autoincrement",
  async up(db, dialect) {
    if (dialect !== "sqlite") return;
    const { rows } = await sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'users'`.execute(db);
    const definition = rows[0]?.sql ?? "";
    const rebuilt = definition
      .replace(/^CREATE TABLE "?users"?/i, 'CREATE TABLE "users_new"')
      .replace(/("?id"? integer primary key)(?! autoincrement)/i, "$1 AUTOINCREMENT");
    if (!/^CREATE TABLE "users_new"/.test(rebuilt) || !/primary key AUTOINCREMENT/i.test(rebuilt)) {
      throw new Error("004: the users table does not have the definition this step rebuilds");
    }
    await sql.raw(rebuilt).execute(db);
    await sql`INSERT INTO users_new SELECT * FROM users`.execute(db);
    await db.schema.dropTable("users").execute();
    await db.schema.alterTable("users_new").renameTo("users").execute();
    await createUsersIndexes(db);
  },
};
