import { Kysely, sql, type Compilable, type CompiledQuery, type QueryResult, type Transaction } from "kysely";
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

/** Number of rows an INSERT, UPDATE or DELETE without RETURNING touched. */
export function affected(result: QueryResult<unknown>): number {
  return Number(result.numAffectedRows ?? 0n);
}

/** Stands for a parameter while a query is compiled. */
class Slot {
  constructor(readonly name: PropertyKey) {}
}

/**
 * A query whose SQL text does not depend on its values (no lists, no optional clauses): built
 * and compiled once per store, then run with each call's values. Kysely otherwise builds and
 * compiles a query on every call, about 30 µs, more than SQLite takes to run most of them; with
 * the statements SQLite prepares once (dialect/sqlite.ts), a call is then only the run.
 * `build` sees `p` as the values, but gets placeholders, so it must pass them on as values only.
 */
export function query<P extends object, R>(build: (q: Q, p: P) => Compilable<R>): (q: Q, p: P) => Promise<QueryResult<R>> {
  const slots = new Proxy({}, { get: (_, name) => new Slot(name) }) as P;
  // Per store: a transaction shares its database's adapter, a second store has its own.
  const compiled = new WeakMap<object, CompiledQuery<R>>();
  return (q, p) => {
    const key = q.getExecutor().adapter;
    let once = compiled.get(key);
    if (!once) {
      once = build(q, slots).compile();
      compiled.set(key, once);
    }
    const parameters = once.parameters.map((value) => (value instanceof Slot ? p[value.name as keyof P] : value));
    return q.executeQuery({ ...once, parameters });
  };
}
