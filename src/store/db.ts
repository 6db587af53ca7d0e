import { CompiledQuery, Kysely, sql, type Compilable, type QueryResult, type Transaction } from "kysely";
import { CommitOutcomeUnknown, isConnectionLoss, Reconnecting, type IfCommitUnknown } from "./connection-loss.ts";
import type { Tables } from "./schema.ts";

export type Dialect = "sqlite" | "postgres";

/** A query runner: the database itself or an open transaction. */
export type Q = Kysely<Tables>;
export type Tx = Transaction<Tables>;

/**
 * What a single statement does when it meets a lost connection (PostgreSQL; see connection-loss.ts):
 * "rerun" for a read or a write whose second run changes nothing, "once" (STORE_UNAVAILABLE) for
 * one whose second run could answer differently.
 */
export type OnLoss = "rerun" | "once";

/** The one handle every store feature (src/store/pending.ts, …) runs its queries over. */
export interface Db {
  readonly dialect: Dialect;
  readonly q: Q;
  /** Runs one statement on `q` with the policy `onLoss` for a lost connection. */
  run<T>(onLoss: OnLoss, work: (q: Q) => Promise<T>): Promise<T>;
  /**
   * Runs `work` in one write transaction (BEGIN IMMEDIATE on SQLite); any throw rolls it all back.
   * A connection lost before COMMIT runs it again; one lost during COMMIT does what `ifCommitUnknown` says.
   */
  write<T>(work: (tx: Tx) => Promise<T>, ifCommitUnknown: IfCommitUnknown<T>): Promise<T>;
  /** Set when a payload was erased and SQLite's WAL may still hold its old pages (see Store.purgeErased). */
  erased: boolean;
  close(): Promise<void>;
}

/** One transaction; a connection lost once the work was done (so during COMMIT) is CommitOutcomeUnknown. */
async function transactionOnce<T>(q: Q, work: (tx: Tx) => Promise<T>): Promise<T> {
  let committing = false;
  try {
    return await q.transaction().execute(async (tx) => {
      const result = await work(tx);
      committing = true;
      return result;
    });
  } catch (err) {
    throw committing && isConnectionLoss(err) ? new CommitOutcomeUnknown(err) : err;
  }
}

function dbOver(dialect: Dialect, q: Q, reconnecting: Reconnecting | null): Db {
  let closed = false;
  return {
    dialect,
    q,
    run: (onLoss, work) => {
      if (!reconnecting) return work(q);
      return onLoss === "once" ? reconnecting.once(() => work(q)) : reconnecting.rerun(() => work(q));
    },
    write: (work, ifCommitUnknown) => {
      if (!reconnecting) return q.transaction().execute(work);
      return reconnecting.transaction(() => transactionOnce(q, work), ifCommitUnknown);
    },
    erased: false,
    async close() {
      if (closed) return;
      closed = true;
      await q.destroy();
    },
  };
}

export interface ConnectOptions {
  /** Told each time a SQLite file or directory open to other users was tightened. */
  warn?: (message: string) => void;
  /** Told (at most once a second) when PostgreSQL connections are lost: a restart, a failover, a reaper. */
  onConnectionLoss?: (reason: string, alsoLost: number) => void;
}

/** Connects to the database a `storage` URL names, without migrating it; fails now if it cannot be reached. */
export async function connectDb(url: string, options: ConnectOptions = {}): Promise<Db> {
  let db: Db;
  // Each driver is loaded only for the storage that uses it: a SQLite install never loads pg.
  if (url.startsWith("sqlite:")) {
    const { sqliteDialect } = await import("./dialect/sqlite.ts");
    db = dbOver("sqlite", new Kysely<Tables>({ dialect: sqliteDialect(url.replace(/^sqlite:/, ""), options.warn) }), null);
  } else if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    const { postgresDialect } = await import("./dialect/postgres.ts");
    const reconnecting = new Reconnecting(options.onConnectionLoss ?? (() => {}));
    db = dbOver("postgres", new Kysely<Tables>({ dialect: postgresDialect(url, reconnecting) }), reconnecting);
  } else {
    throw new Error(`storage ${url.split(":")[0]}: expected a sqlite: or postgres:// URL`);
  }
  try {
    // Straight to the database, not through the retry: at start-up the operator wants the real reason.
    await selectOne(db.q);
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

const selectOne = (q: Q) => sql`SELECT 1`.execute(q);

export async function ping(db: Db): Promise<void> {
  await db.run("rerun", selectOne);
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

interface Grouped<P, R> {
  p: P;
  resolve: (value: R) => void;
  reject: (err: unknown) => void;
}

type Outcome<R> = { ok: true; value: R } | { ok: false; err: unknown };

const SAVEPOINT = CompiledQuery.raw("savepoint grouped");
const RELEASE = CompiledQuery.raw("release grouped");
const ROLLBACK_TO = CompiledQuery.raw("rollback to grouped");

/**
 * One write of a single statement whose commit, on SQLite, is shared by the calls made in the
 * same turn of the event loop (a group commit): they are gathered until the turn's I/O callbacks
 * have run, then made in one transaction, each in its own savepoint, so one that fails is undone
 * and refused alone. Every caller is answered only after the COMMIT, so each write is as durable
 * as it was on its own; what the group saves is the per-commit work (the WAL locks and frames),
 * which profiles showed as most of an invites_api request. A lone call runs as before, by itself.
 * PostgreSQL runs each call as it comes (as `run("once")`): the server groups commits itself.
 */
export function groupCommitted<P, R>(db: Db, work: (q: Q, p: P) => Promise<R>): (p: P) => Promise<R> {
  if (db.dialect !== "sqlite") return (p) => db.run("once", (q) => work(q, p));
  let waiting: Grouped<P, R>[] = [];

  async function commitGroup(group: Grouped<P, R>[]): Promise<Outcome<R>[]> {
    return db.write(async (tx) => {
      const outcomes: Outcome<R>[] = [];
      for (const { p } of group) {
        await tx.executeQuery(SAVEPOINT);
        try {
          outcomes.push({ ok: true, value: await work(tx, p) });
        } catch (err) {
          // SQLite ends the whole transaction itself on some errors (SQLITE_FULL…): then there is
          // no savepoint left to go back to, and the error fails the group, as it would each write alone.
          await tx.executeQuery(ROLLBACK_TO).catch(() => Promise.reject(err));
          outcomes.push({ ok: false, err });
        }
        await tx.executeQuery(RELEASE);
      }
      return outcomes;
    }, "unavailable");
  }

  function flush(): void {
    const group = waiting;
    waiting = [];
    if (group.length === 1) {
      const [only] = group as [Grouped<P, R>];
      db.run("once", (q) => work(q, only.p)).then(only.resolve, only.reject);
      return;
    }
    commitGroup(group).then(
      (outcomes) => outcomes.forEach((outcome, i) => (outcome.ok ? group[i]!.resolve(outcome.value) : group[i]!.reject(outcome.err))),
      (err: unknown) => group.forEach((one) => one.reject(err)),
    );
  }

  return (p) =>
    new Promise<R>((resolve, reject) => {
      if (waiting.push({ p, resolve, reject }) === 1) setImmediate(flush);
    });
}
