import { sql, type Kysely } from "kysely";
import type { Dialect } from "../db.ts";

/**
 * One change to the schema, for both dialects. A step is never edited once released: a new
 * change is a new file, appended to the list in index.ts. Steps see the database untyped, as
 * the tables were when they were written, not as schema.ts describes them today.
 */
export interface Migration {
  readonly name: string;
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
}

/** Records in gatehouse_migrations that this database has had the step `name`. */
export async function recordStep(db: Kysely<any>, name: string): Promise<void> {
  await db.insertInto("gatehouse_migrations").values({ name, applied_at: Date.now() }).execute();
}

/** The one column type that differs: a generated id (SQLite's rowid alias, PostgreSQL's sequence). */
export function idType(dialect: Dialect): "integer" | "bigserial" {
  return dialect === "sqlite" ? "integer" : "bigserial";
}

/**
 * Rebuilds a SQLite table from its own definition as `edit` changes it (SQLite alters neither a
 * column's constraints nor its key in place), keeping every row; `edit` returns null when the
 * definition is not the one it expects. The table's indexes go with the old table: the step makes
 * them again. The runner turns foreign keys off meanwhile, or dropping the old table would take
 * the rows that refer to it along.
 */
export async function rebuildSqliteTable(db: Kysely<any>, table: string, edit: (definition: string) => string | null, step: string): Promise<void> {
  const { rows } = await sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ${table}`.execute(db);
  const definition = (rows[0]?.sql ?? "").replace(new RegExp(`^CREATE TABLE "?${table}"?`, "i"), `CREATE TABLE "${table}_new"`);
  const rebuilt = definition.startsWith(`CREATE TABLE "${table}_new"`) ? edit(definition) : null;
  if (rebuilt === null) throw new Error(`${step}: the ${table} table does not have the definition this step rebuilds`);
  await sql.raw(rebuilt).execute(db);
  await sql`INSERT INTO ${sql.table(`${table}_new`)} SELECT * FROM ${sql.table(table)}`.execute(db);
  await db.schema.dropTable(table).execute();
  await db.schema.alterTable(`${table}_new`).renameTo(table).execute();
}
