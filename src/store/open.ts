import type { Store } from "./store.ts";
import { PostgresStore, type PostgresStoreOptions } from "./postgres/postgres-store.ts";
import { SqliteStore } from "./sqlite/sqlite-store.ts";

/** Opens and migrates the store a `storage` URL names. */
export async function openStore(url: string, options: PostgresStoreOptions = {}): Promise<Store> {
  let store: Store;
  if (url.startsWith("sqlite:")) {
    store = SqliteStore.open(url);
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
