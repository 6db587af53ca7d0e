import { ping, type Db } from "./db.ts";
import type { Store } from "./store.ts";

export function metaStore(db: Db): Pick<Store, "loadSecret" | "ping"> {
  const { q } = db;
  return {
    async loadSecret(candidate) {
      await q
        .insertInto("meta")
        .values({ key: "secret", value: candidate })
        .onConflict((oc) => oc.column("key").doNothing())
        .execute();
      const row = await q.selectFrom("meta").select("value").where("key", "=", "secret").executeTakeFirstOrThrow();
      return row.value;
    },

    ping: () => ping(db),
  };
}
