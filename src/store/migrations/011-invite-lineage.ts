import { sql } from "kysely";
import type { Migration } from "./types.ts";

/**
 * Invite lineage and quotas (DESIGN §11). An account made from an invite records the kind of its
 * inviter and, when that was an account, the inviter's id: ids are never handed out again (004), so
 * after the inviter's deletion the id names nobody rather than a newcomer who took the same name;
 * `invited_by` keeps the name, readable for good. Existing accounts get both from their invite.
 * The index on invites serves the per-user quota's count of recent invites.
 */
export const inviteLineage: Migration = {
  name: "011-invite-lineage",
  async up(db) {
    await db.schema
      .alterTable("users")
      .addColumn("inviter_kind", "text", (c) => c.check(sql`inviter_kind IN ('user', 'key', 'admin')`))
      .execute();
    await db.schema.alterTable("users").addColumn("inviter_id", "bigint").execute();
    await sql`
      UPDATE users SET inviter_kind = (SELECT i.issuer_kind FROM invites i WHERE i.id = users.invite_id)
      WHERE invite_id IS NOT NULL`.execute(db);
    // Invites by accounts name their issuer `u<id>` (domain/invites.ts).
    await sql`
      UPDATE users SET inviter_id = (SELECT CAST(substr(i.issuer_id, 2) AS BIGINT) FROM invites i WHERE i.id = users.invite_id)
      WHERE inviter_kind = 'user'`.execute(db);
    await sql`UPDATE users SET invited_by = 'admin' WHERE inviter_kind = 'admin'`.execute(db);
    await db.schema.createIndex("users_inviter").on("users").column("inviter_id").where(sql.ref("inviter_id"), "is not", null).execute();
    await db.schema.createIndex("invites_issuer_created").on("invites").columns(["issuer_id", "created_at"]).execute();
  },
};
