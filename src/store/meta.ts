import { ping, query, type Db } from "./db.ts";
import type { Store } from "./store.ts";

const offerSecret = query((q, p: { candidate: string }) =>
  q
    .insertInto("meta")
    .values({ key: "secret", value: p.candidate })
    .onConflict((oc) => oc.column("key").doNothing()),
);
const storedSecret = query((q) => q.selectFrom("meta").select("value").where("key", "=", "secret"));

export function metaStore(db: Db): Pick<Store, "loadSecret" | "ping"> {
  const { q } = db;
  return {
    async loadSecret(candidate) {
      await offerSecret(q, { candidate });
      return (await storedSecret(q, {})).rows[0]!.value;
    },

    ping: () => ping(db),
  };
}
