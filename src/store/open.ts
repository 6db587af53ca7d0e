import { accountsStore } from "./accounts.ts";
import { approvalStore } from "./approval.ts";
import { connectDb, type ConnectOptions, type Db } from "./db.ts";
import { invitesStore } from "./invites.ts";
import { keysStore } from "./keys.ts";
import { metaStore } from "./meta.ts";
import { migrate } from "./migrate.ts";
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
  const store = await connectStore(url, options);
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
