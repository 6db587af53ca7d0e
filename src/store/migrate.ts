import { sql, type Kysely } from "kysely";
import type { Db } from "./db.ts";
import { MIGRATIONS } from "./migrations/index.ts";
import { recordStep } from "./migrations/types.ts";

/** Applies, in one transaction, the steps of MIGRATIONS this database has not had yet. */
async function apply(tx: Kysely<any>, db: Db): Promise<void> {
  await tx.schema
    .createTable("gatehouse_migrations")
    .ifNotExists()
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("applied_at", "bigint", (c) => c.notNull())
    .execute();
  for (const step of MIGRATIONS) {
    const done = await tx.selectFrom("gatehouse_migrations").select("name").where("name", "=", step.name).executeTakeFirst();
    if (done) continue;
    await step.up(tx, db.dialect);
    await recordStep(tx, step.name);
  }
}

/** The table every gatehouse store has from its first migration on. */
export const MIGRATIONS_TABLE = "gatehouse_migrations";

/** Whether gatehouse's tables are there at all: a database without them is no gatehouse store yet. */
export async function hasSchema(db: Db): Promise<boolean> {
  const found = db.dialect === "postgres"
    ? await sql`SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ${MIGRATIONS_TABLE}`.execute(db.q)
    : await sql`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ${MIGRATIONS_TABLE}`.execute(db.q);
  return found.rows.length > 0;
}

/**
 * Brings the schema up to date. Instances starting together queue: on PostgreSQL behind an
 * advisory lock per schema that ends with the transaction, on SQLite behind BEGIN IMMEDIATE.
 */
export async function migrate(db: Db): Promise<void> {
  if (db.dialect === "postgres") {
    await db.write(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(hashtext('gatehouse.migrate'), hashtext(current_schema()))`.execute(tx);
      await apply(tx, db);
      // A second run after an unknown COMMIT finds the steps recorded and does nothing.
    }, "rerun");
    return;
  }
  // Rebuilding a table drops the old one; with enforcement on, that would cascade to its
  // sessions. The pragma has no effect inside a transaction, hence one connection around it.
  await db.q.connection().execute(async (connection) => {
    await sql`PRAGMA foreign_keys = OFF`.execute(connection);
    try {
      await connection.transaction().execute(async (tx) => {
        await apply(tx, db);
        // Checked before commit, since enforcement is off while tables are rebuilt.
        const dangling = await sql`PRAGMA foreign_key_check`.execute(tx);
        if (dangling.rows.length > 0) throw new Error("migration left dangling foreign keys");
      });
    } finally {
      await sql`PRAGMA foreign_keys = ON`.execute(connection);
    }
  });
}
