import { sql } from "kysely";
import { createUsersIndexes } from "./001-core.ts";
import { rebuildSqliteTable, type Migration } from "./types.ts";

/**
 * Manual approval (DESIGN §11): a verified registration or an accepted invite may wait as
 * 'awaiting' for a moderator, holding its name and mail hash like a pending one until its
 * expires_at. It keeps the person's reason, and the moderator links' token as a hash. SQLite
 * cannot change a CHECK constraint, so there users is rebuilt from its own definition with the
 * new state allowed (as 004 did); PostgreSQL swaps the constraint.
 */
export const approval: Migration = {
  name: "009-approval",
  async up(db, dialect) {
    if (dialect === "sqlite") {
      await rebuildSqliteTable(
        db,
        "users",
        (definition) => {
          const rebuilt = definition.replace(/(state"? in \('pending', 'active')\)/i, "$1, 'awaiting')");
          return rebuilt === definition ? null : rebuilt;
        },
        "009",
      );
      await createUsersIndexes(db);
      await db.schema.createIndex("users_skeleton").on("users").column("skeleton").execute();
    } else {
      await db.schema.alterTable("users").dropConstraint("users_state_check").execute();
      await db.schema.alterTable("users").addCheckConstraint("users_state_check", sql`state IN ('pending', 'active', 'awaiting')`).execute();
    }
    await db.schema.alterTable("users").addColumn("reason", "text").execute();
    await db.schema.alterTable("users").addColumn("approval_token_hash", "text").execute();
    // SQLite adds no UNIQUE column in place; a unique index allows the many NULLs all the same.
    await db.schema.createIndex("users_approval_token").unique().on("users").column("approval_token_hash").execute();
    await db.schema.createIndex("users_awaiting_expiry").on("users").column("expires_at").where(sql.ref("state"), "=", "awaiting").execute();
  },
};
