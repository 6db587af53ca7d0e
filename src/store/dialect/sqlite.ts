import { resolve } from "node:path";
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
  #release: (() => void) | undefined;

  constructor(db: Database.Database, file: string) {
    super({ database: preparedOnce(db) });
    this.#db = db;
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
    await super.releaseConnection();
    const release = this.#release;
    this.#release = undefined;
    release?.();
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
