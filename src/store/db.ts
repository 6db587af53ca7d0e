import { Kysely, sql, type Transaction } from "kysely";
import { postgresDialect } from "./dialect/postgres.ts";
import { sqliteDialect } from "./dialect/sqlite.ts";
import type { Tables } from "./schema.ts";

export type Dialect = "sqlite" | "postgres";

/** A query runner: the database itself or an open transaction. */
export type Q = Kysely<Tables>;
export type Tx = Transaction<Tables>;

/** The one handle every store feature (src/store/pending.ts, …) runs its queries over. */
export interface Db {
  readonly dialect: Dialect;
  readonly q: Q;
  /** Runs `work` in one write transaction (BEGIN IMMEDIATE on SQLite); any throw rolls it all back. */
  write<T>(work: (tx: Tx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function dbOver(dialect: Dialect, q: Q): Db {
  let closed = false;
  return {
    dialect,
    q,
    write: (work) => q.transaction().execute(work),
    async close() {
      if (closed) return;
      closed = true;
      await q.destroy();
    },
  };
}

/** Connects to the database a `storage` URL names, without migrating it; fails now if it cannot be reached. */
export async function connectDb(url: string): Promise<Db> {
  let db: Db;
  if (url.startsWith("sqlite:")) {
    db = dbOver("sqlite", new Kysely<Tables>({ dialect: sqliteDialect(url.replace(/^sqlite:/, "")) }));
  } else if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    db = dbOver("postgres", new Kysely<Tables>({ dialect: postgresDialect(url) }));
  } else {
    throw new Error(`storage ${url.split(":")[0]}: expected a sqlite: or postgres:// URL`);
  }
  try {
    await ping(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

export async function ping(db: Db): Promise<void> {
  await sql`SELECT 1`.execute(db.q);
}

/**
 * Which unique column a constraint error names, so a lost race maps to the right refusal;
 * null for any other error. The two drivers report it differently, hence the two shapes.
 */
export function uniqueViolation(err: unknown): string | null {
  const e = err as { code?: string; message?: string; detail?: string };
  if (e.code === "SQLITE_CONSTRAINT_UNIQUE" || e.code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
    return /UNIQUE constraint failed: \w+\.(\w+)/.exec(e.message ?? "")?.[1] ?? "unknown";
  }
  if (e.code === "23505") return /^Key \((\w+)\)=/.exec(e.detail ?? "")?.[1] ?? "unknown";
  return null;
}

/** Number of rows a DELETE or UPDATE touched, as a number. */
export function affected(result: { numDeletedRows: bigint } | { numUpdatedRows: bigint }): number {
  return Number("numDeletedRows" in result ? result.numDeletedRows : result.numUpdatedRows);
}
