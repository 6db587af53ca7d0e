import { createUsersIndexes } from "./001-core.ts";
import { rebuildSqliteTable, type Migration } from "./types.ts";

/**
 * Account ids go out in events: AUTOINCREMENT keeps SQLite from handing a deleted account's id
 * to the next one (a PostgreSQL sequence never does). SQLite cannot alter that in place, so the
 * table is rebuilt from its own definition with the keyword added (its sessions stay: see rebuildSqliteTable).
 */
export const usersAutoincrement: Migration = {
  name: "004-users-autoincrement",
  async up(db, dialect) {
    if (dialect !== "sqlite") return;
    await rebuildSqliteTable(
      db,
      "users",
      (definition) => {
        const rebuilt = definition.replace(/("?id"? integer primary key)(?! autoincrement)/i, "$1 AUTOINCREMENT");
        return /primary key AUTOINCREMENT/i.test(rebuilt) ? rebuilt : null;
      },
      "004",
    );
    await createUsersIndexes(db);
  },
};
