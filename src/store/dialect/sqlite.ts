import { statSync } from "node:fs";
import { resolve } from "node:path";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import {
  CompiledQuery,
  SqliteAdapter,
  SqliteDriver,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type SqliteDatabase,
} from "kysely";
import { prepareSqliteFiles } from "../../file-modes.ts";

/**
 * Opens a SQLite file with the settings every gatehouse connection runs with, its directory 0700
 * and its files 0600 (src/file-modes.ts); `warn` is told of each one found open to other users and tightened.
 */
export function openSqliteFile(file: string, warn: (message: string) => void = () => {}): Database.Database {
  if (file !== ":memory:") for (const notice of prepareSqliteFiles(file)) warn(notice);
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // In WAL mode NORMAL keeps every committed transaction across a crash of the process (a
  // registration answered 200 survives SIGKILL; test/durability.test.ts), and only a power cut
  // can lose the last commits. FULL would fsync on the event loop at every registration.
  db.pragma("synchronous = NORMAL");
  db.pragma("busy_timeout = 5000");
  // Deleted rows (sent mail payloads, voided registrations) are overwritten, not left in free pages.
  db.pragma("secure_delete = ON");
  db.pragma("foreign_keys = ON");
  return db;
}

/**
 * Whether the SQLite file holds `table`, asked without changing the file: opened read-only, so a
 * wrong path reaching some other file (or an empty one) gets no WAL header or journal. Undefined
 * when a read-only look is not possible (a WAL file whose shared memory cannot be made).
 */
export function sqliteFileHasTable(file: string, table: string): boolean | undefined {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch {
    return undefined;
  }
  try {
    return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(table) !== undefined;
  } catch (err) {
    if ((err as { code?: string }).code === "SQLITE_NOTADB") throw err;
    return undefined;
  } finally {
    db.close();
  }
}

/**
 * Kysely's SQLite connection calls `prepare` for every query; this hands it each statement
 * compiled once per SQL text and reused (compiling showed up on every request in profiles).
 * The texts are the store's own queries, so the cache stays as small as the store.
 */
function preparedOnce(db: Database.Database): SqliteDatabase {
  const statements = new Map<string, Database.Statement>();
  return {
    prepare(sql) {
      let statement = statements.get(sql);
      if (!statement) {
        statement = db.prepare(sql);
        statements.set(sql, statement);
      }
      return statement;
    },
    close() {
      statements.clear();
      if (db.open) db.close();
    },
  };
}

/** Hands out turns in call order. */
class Turns {
  #last: Promise<void> = Promise.resolve();
  users = 0;

  async take(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = this.#last;
    this.#last = before.then(() => mine);
    await before;
    return release;
  }
}

/**
 * One turn per file for every connection this process has on it. better-sqlite3 waits for a
 * lock synchronously (busy_timeout), on the event loop: a second connection in the same process
 * that waited for a transaction still awaiting its next statement would wait out the timeout.
 */
const turnsByFile = new Map<string, Turns>();

/** SQLite's own checkpoint threshold (wal_autocheckpoint), in pages. */
const AUTOCHECKPOINT_PAGES = 1000;
/** How many uses of a connection apart its WAL's size is looked at. */
const WAL_LOOK_EVERY = 256;
/** How often the Checkpointer copies what the WAL has gained into the database file. */
const CHECKPOINT_INTERVAL_MS = 200;

/**
 * SQLite checkpoints the WAL at the end of whichever commit takes it past 1000 pages: that
 * commit, on the event loop, copies the pages and waits for two fsyncs, and every request waits
 * with it (under a flood of invites_api requests the p99 was 16.8 ms with those checkpoints, 8.2 ms
 * without). A busy connection hands them to a thread of its own (checkpoint-worker.js), which
 * checkpoints PASSIVE a few times a second; each commit is as durable as before (WAL,
 * synchronous=NORMAL), only the copying into the database file moves. Should the thread fail,
 * the connection checkpoints itself again. It starts once the WAL file has grown to the
 * checkpoint threshold, so a connection that writes little (a command, most tests, a flood of
 * refusals) never starts one.
 */
class Checkpointer {
  readonly #worker: Worker;
  #closing = false;

  constructor(db: Database.Database, file: string) {
    this.#worker = new Worker(new URL("./checkpoint-worker.js", import.meta.url), { workerData: { file, intervalMs: CHECKPOINT_INTERVAL_MS } });
    this.#worker.unref();
    db.pragma("wal_autocheckpoint = 0");
    const takeBack = () => {
      if (!this.#closing && db.open) db.pragma(`wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`);
    };
    this.#worker.on("error", takeBack);
    this.#worker.on("exit", takeBack);
  }

  /** Ends the thread (and its connection) before the serving connection closes, which then checkpoints last. */
  async close(): Promise<void> {
    this.#closing = true;
    const closed = new Promise<void>((done) => {
      this.#worker.once("message", () => done());
      this.#worker.once("exit", () => done());
    });
    this.#worker.postMessage("close");
    await closed;
    await this.#worker.terminate();
  }
}

/**
 * Kysely's driver, with write transactions opened by BEGIN IMMEDIATE: the write lock is taken at
 * the start, so a transaction never fails half-way on a lock another connection took first. A
 * query or a whole transaction holds the file's turn, so no other caller in this process
 * interleaves with it (Kysely's own mutex does the same for one connection).
 */
class ImmediateSqliteDriver extends SqliteDriver {
  readonly #key: string;
  readonly #turns: Turns;
  readonly #db: Database.Database;
  readonly #file: string;
  #release: (() => void) | undefined;
  #uses = 0;
  #checkpointer: Checkpointer | undefined;

  constructor(db: Database.Database, file: string) {
    super({ database: preparedOnce(db) });
    this.#db = db;
    this.#file = file;
    this.#key = file === ":memory:" ? `:memory:${Math.random()}` : resolve(file);
    let turns = turnsByFile.get(this.#key);
    if (!turns) turnsByFile.set(this.#key, (turns = new Turns()));
    turns.users += 1;
    this.#turns = turns;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const release = await this.#turns.take();
    this.#release = release;
    return super.acquireConnection();
  }

  override async releaseConnection(): Promise<void> {
    if (++this.#uses % WAL_LOOK_EVERY === 0 && !this.#checkpointer && this.#file !== ":memory:" && this.#db.open && this.#walIsBusy()) {
      this.#checkpointer = new Checkpointer(this.#db, this.#file);
    }
    await super.releaseConnection();
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }

  /** Whether the WAL file has grown to the checkpoint threshold: this database is written to a lot. */
  #walIsBusy(): boolean {
    const size = statSync(`${this.#file}-wal`, { throwIfNoEntry: false })?.size ?? 0;
    return size >= AUTOCHECKPOINT_PAGES * (this.#db.pragma("page_size", { simple: true }) as number);
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }

  /**
   * SQLite ends a transaction itself on some errors (SQLITE_FULL, SQLITE_IOERR…); a ROLLBACK then
   * fails with "no transaction is active", and Kysely would throw that instead of the real error.
   */
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#db.inTransaction) await super.rollbackTransaction(connection);
  }

  override async destroy(): Promise<void> {
    await this.#checkpointer?.close();
    this.#turns.users -= 1;
    if (this.#turns.users === 0) turnsByFile.delete(this.#key);
    await super.destroy();
  }
}

/** Kysely's SQLite dialect with the driver above; everything else is Kysely's own. */
class GatehouseSqliteDialect implements Dialect {
  constructor(
    readonly file: string,
    readonly warn?: (message: string) => void,
  ) {}

  createDriver(): Driver {
    return new ImmediateSqliteDriver(openSqliteFile(this.file, this.warn), this.file);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

/** The Kysely dialect for a `sqlite:` file. */
export function sqliteDialect(file: string, warn?: (message: string) => void): Dialect {
  return new GatehouseSqliteDialect(file, warn);
}
