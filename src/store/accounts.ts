import { sql } from "kysely";
import { affected, type Db } from "./db.ts";
import { ACCOUNT_COLUMNS, toAccount } from "./rows.ts";
import type { Store } from "./store.ts";

export function accountsStore(db: Db): Pick<Store, "listAccounts" | "deleteAccount" | "forgetTokensVerifiedBefore" | "findLogin"> {
  const { q } = db;
  return {
    async listAccounts() {
      const rows = await q.selectFrom("users").select(ACCOUNT_COLUMNS).where("state", "=", sql.lit("active")).orderBy("username").execute();
      return rows.map(toAccount);
    },

    async deleteAccount(username) {
      // Its sessions go with it (ON DELETE CASCADE), and with it the claim on its mail hash.
      const result = await q.deleteFrom("users").where("username", "=", username).where("state", "=", sql.lit("active")).executeTakeFirst();
      return affected(result) > 0;
    },

    async forgetTokensVerifiedBefore(before) {
      const result = await q
        .updateTable("users")
        .set({ token_hash: null })
        .where("state", "=", sql.lit("active"))
        .where("token_hash", "is not", null)
        .where("verified_at", "<", before)
        .executeTakeFirst();
      return affected(result);
    },

    async findLogin(username) {
      const row = await q
        .selectFrom("users")
        .select(["id", "username", "password_hash"])
        .where("username", "=", username)
        .where("state", "=", sql.lit("active"))
        .executeTakeFirst();
      return row ? { id: row.id, username: row.username, passwordHash: row.password_hash } : null;
    },
  };
}
