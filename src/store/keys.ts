import { affected, query, type Db } from "./db.ts";
import { toApiKey } from "./rows.ts";
import type { ApiKeyRecord, Store } from "./store.ts";

const insertKey = query((q, p: ApiKeyRecord) =>
  q.insertInto("api_keys").values({ id: p.id, name: p.name, secret_hash: p.secretHash, created_at: p.createdAt }),
);
const findKey = query((q, p: { id: string }) => q.selectFrom("api_keys").selectAll().where("id", "=", p.id));
const listKeys = query((q) => q.selectFrom("api_keys").selectAll().orderBy("created_at").orderBy("id"));
const deleteKey = query((q, p: { id: string }) => q.deleteFrom("api_keys").where("id", "=", p.id));

export function keysStore(db: Db): Pick<Store, "insertApiKey" | "findApiKey" | "listApiKeys" | "deleteApiKey"> {
  return {
    async insertApiKey(key) {
      // A second run would fail on the key it stored the first time.
      await db.run("once", (q) => insertKey(q, key));
    },

    async findApiKey(id) {
      const [row] = (await db.run("rerun", (q) => findKey(q, { id }))).rows;
      return row ? toApiKey(row) : null;
    },

    async listApiKeys() {
      return (await db.run("rerun", (q) => listKeys(q, {}))).rows.map(toApiKey);
    },

    async deleteApiKey(id) {
      // A second run would report the key it deleted as not found.
      return affected(await db.run("once", (q) => deleteKey(q, { id }))) > 0;
    },
  };
}
