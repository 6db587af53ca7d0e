import { existsSync } from "node:fs";
import { accountsStore } from "./accounts.ts";
import { approvalStore } from "./approval.ts";
import { connectDb, type ConnectOptions, type Db } from "./db.ts";
import { invitesStore } from "./invites.ts";
import { keysStore } from "./keys.ts";
import { metaStore } from "./meta.ts";
import { sqliteFileHasTable } from "./dialect/sqlite.ts";
import { hasSchema, migrate, MIGRATIONS_TABLE } from "./migrate.ts";
import { outboxStore } from "./outbox.ts";
import { pendingStore } from "./pending.ts";
import { sessionsStore } from "./sessions.ts";
import type { Store } from "./store.ts";

/** The one Store, composed from its features over one database handle. */
export function composeStore(db: Db): Store {
  return {
    kind: db.dialect,
    migrate: () => migrate(db),
    close: () => db.close(),
    ...metaStore(db),
    ...pendingStore(db),
    ...accountsStore(db),
    ...keysStore(db),
    ...invitesStore(db),
    ...sessionsStore(db),
    ...outboxStore(db),
    ...approvalStore(db),
  };
}

/** A store on the database a `storage` URL names, as it is: not migrated (another instance may be doing that). */
export async function connectStore(url: string, options: ConnectOptions = {}): Promise<Store> {
  return composeStore(await connectDb(url, options));
}

/** Opens and migrates the store a `storage` URL names. */
export async function openStore(url: string, options: ConnectOptions = {}): Promise<Store> {
  return migrated(await connectStore(url, options));
}

/**
 * openStore for a store that exists already; null, having created nothing, when the SQLite file is
 * not there or the database has no gatehouse tables.
 */
export async function openExistingStore(url: string, options: ConnectOptions = {}): Promise<Store | null> {
  if (url.startsWith("sqlite:")) {
    // Opening a SQLite file for writing creates it (and its directory), and makes any file a WAL database: look first.
    const file = url.slice("sqlite:".length);
    if (!existsSync(file) || sqliteFileHasTable(file, MIGRATIONS_TABLE) === false) return null;
  }
  const db = await connectDb(url, options);
  let exists: boolean;
  try {
    exists = await hasSchema(db);
  } catch (err) {
    await db.close();
    throw err;
  }
  if (!exists) {
    await db.close();
    return null;
  }
  return migrated(composeStore(db));
}

async function migrated(store: Store): Promise<Store> {
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
