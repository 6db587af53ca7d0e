import { sql } from "kysely";
import { ping, query, type Db } from "./db.ts";
import type { Store } from "./store.ts";

const offerSecret = query((q, p: { candidate: string }) =>
  q
    .insertInto("meta")
    .values({ key: "secret", value: p.candidate })
    .onConflict((oc) => oc.column("key").doNothing()),
);
const storedSecret = query((q) => q.selectFrom("meta").select("value").where("key", "=", "secret"));
const deleteSecret = query((q) => q.deleteFrom("meta").where("key", "=", "secret"));
// A real write that reaches the WAL file: a rolled-back one may never leave the page cache.
const heartbeat = query((q, p: { now: string }) =>
  q
    .insertInto("meta")
    .values({ key: "heartbeat", value: p.now })
    .onConflict((oc) => oc.column("key").doUpdateSet((eb) => ({ value: eb.ref("excluded.value") }))),
);

/**
 * Makes what was erased since the last call unrecoverable from SQLite's files. The WAL keeps every
 * page as it was before the payload was erased, until a checkpoint copies the new pages into the
 * database (where secure_delete zeroes the old bytes) and TRUNCATE empties the WAL. A reader in
 * another process can hold it back: then nothing waits (the event loop would), and the next call
 * tries again. On PostgreSQL old row versions are the server's to reclaim (VACUUM) and its WAL is
 * not in our files.
 */
async function purgeErased(db: Db): Promise<void> {
  if (db.dialect !== "sqlite" || !db.erased) return;
  await db.q.connection().execute(async (c) => {
    const { rows } = await sql<{ timeout: number }>`PRAGMA busy_timeout`.execute(c);
    await sql`PRAGMA busy_timeout = 0`.execute(c);
    try {
      const [result] = (await sql<{ busy: number }>`PRAGMA wal_checkpoint(TRUNCATE)`.execute(c)).rows;
      if (result?.busy === 0) db.erased = false;
    } finally {
      await sql`PRAGMA busy_timeout = ${sql.raw(String(Number(rows[0]?.timeout ?? 5000)))}`.execute(c);
    }
  });
}

export function metaStore(db: Db): Pick<Store, "loadSecret" | "findStoredSecret" | "deleteStoredSecret" | "ping" | "probeWrite" | "purgeErased"> {
  return {
    async loadSecret(candidate) {
      await db.run("rerun", (q) => offerSecret(q, { candidate }));
      return (await db.run("rerun", (q) => storedSecret(q, {}))).rows[0]!.value;
    },

    async findStoredSecret() {
      return (await db.run("rerun", (q) => storedSecret(q, {}))).rows[0]?.value ?? null;
    },

    async deleteStoredSecret() {
      await db.run("rerun", (q) => deleteSecret(q, {}));
      db.erased = true;
      await purgeErased(db);
    },

    ping: () => ping(db),

    async probeWrite(now) {
      await db.run("rerun", (q) => heartbeat(q, { now: String(now) }));
    },

    purgeErased: () => purgeErased(db),
  };
}
