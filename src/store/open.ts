import type { Store } from "./store.ts";
import { SqliteStore } from "./sqlite/sqlite-store.ts";

/** Opens and migrates the store a `storage` URL names. */
export async function openStore(url: string): Promise<Store> {
  if (!url.startsWith("sqlite:")) {
    throw new Error(`storage ${url.split(":")[0]}: only sqlite: storage is available in this version`);
  }
  const store = SqliteStore.open(url);
  await store.migrate();
  return store;
}
