import { affected, type Db } from "./db.ts";
import { toApiKey } from "./rows.ts";
import type { Store } from "./store.ts";

export function keysStore(db: Db): Pick<Store, "insertApiKey" | "findApiKey" | "listApiKeys" | "deleteApiKey"> {
  const { q } = db;
  return {
    async insertApiKey(key) {
      await q
        .insertInto("api_keys")
        .values({ id: key.id, name: key.name, secret_hash: key.secretHash, created_at: key.createdAt })
        .execute();
    },

    async findApiKey(id) {
      const row = await q.selectFrom("api_keys").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? toApiKey(row) : null;
    },

    async listApiKeys() {
      const rows = await q.selectFrom("api_keys").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toApiKey);
    },

    async deleteApiKey(id) {
      return affected(await q.deleteFrom("api_keys").where("id", "=", id).executeTakeFirst()) > 0;
    },
  };
}
