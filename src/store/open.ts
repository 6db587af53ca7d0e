import type { Store } from "./store.ts";
import { PostgresStore, type PostgresStoreOptions } from "./postgres/postgres-store.ts";
import { SqliteStore } from "./sqlite/sqlite-store.ts";

export interface OpenStoreOptions {
  /** Told each time a store file or directory open to other users was tightened. */
  warn?: (message: string) => void;
}

/** Opens and migrates the store a `storage` URL names. */
export async function openStore(url: string, options: OpenStoreOptions & PostgresStoreOptions = {}): Promise<Store> {
  let store: Store;
  if (url.startsWith("sqlite:")) {
    const sqlite = SqliteStore.open(url);
    for (const notice of sqlite.fileNotices) options.warn?.(notice);
    store = sqlite;
  } else if (url.startsWith("postgres://") || url.startsWith("postgresql://")) {
    store = await PostgresStore.open(url, options);
  } else {
    throw new Error(`storage ${url.split(":")[0]}: expected a sqlite: or postgres:// URL`);
  }
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
