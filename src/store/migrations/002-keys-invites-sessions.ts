import { sql } from "kysely";
import { idType, type Migration } from "./types.ts";

/** API keys, invitations (and who invited an account), login sessions. */
export const keysInvitesSessions: Migration = {
  name: "002-keys-invites-sessions",
  async up(db, dialect) {
    await db.schema
      .createTable("api_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("name", "text", (c) => c.notNull().defaultTo(""))
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("invites")
      .addColumn("id", idType(dialect), (c) => c.primaryKey())
      .addColumn("handle", "text", (c) => c.notNull().unique())
      .addColumn("token_hash", "text", (c) => c.notNull().unique())
      .addColumn("issuer_kind", "text", (c) => c.notNull().check(sql`issuer_kind IN ('user', 'key', 'admin')`))
      .addColumn("issuer_id", "text", (c) => c.notNull())
      .addColumn("issuer_name", "text", (c) => c.notNull())
      .addColumn("username", "text")
      .addColumn("uses_total", "integer", (c) => c.notNull().check(sql`uses_total > 0`))
      .addColumn("uses_left", "integer", (c) => c.notNull().check(sql`uses_left >= 0`))
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("revoked_at", "bigint")
      .execute();

    await db.schema
      .createTable("sessions")
      .addColumn("token_hash", "text", (c) => c.primaryKey())
      .addColumn("user_id", "bigint", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("sessions_user").on("sessions").column("user_id").execute();
    await db.schema.createIndex("sessions_expiry").on("sessions").column("expires_at").execute();

    await db.schema.alterTable("users").addColumn("invited_by", "text").execute();
    await db.schema.alterTable("users").addColumn("invite_id", "bigint").execute();
  },
};
