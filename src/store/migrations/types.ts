import type { Kysely } from "kysely";
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
