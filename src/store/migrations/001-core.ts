import { sql, type Kysely } from "kysely";
import { idType, type Migration } from "./types.ts";

/** The partial indexes on users; 004 rebuilds the table on SQLite and makes them again. */
export async function createUsersIndexes(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("users_pending_expiry").on("users").column("expires_at").where(sql.ref("state"), "=", "pending").execute();
  await db.schema
    .createIndex("users_verified")
    .on("users")
    .column("verified_at")
    .where((eb) => eb.and([eb(sql.ref("token_hash"), "is not", null), eb(sql.ref("state"), "=", "active")]))
    .execute();
}

/** The outbox's indexes of this step; 007 rebuilds the table on SQLite and makes them again. */
export async function createOutboxIndexes(db: Kysely<any>): Promise<void> {
    await db.schema.createIndex("outbox_due").on("outbox").column("next_attempt_at").where(sql.ref("state"), "=", "queued").execute();
    await db.schema.createIndex("outbox_user").on("outbox").column("user_id").execute();
}

/** The service secret, users (pending and active in one table, so names and mail hashes are unique across both) and the outbox. */
export const core: Migration = {
  name: "001-core",
  async up(db, dialect) {
    await db.schema
      .createTable("meta")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("users")
      .addColumn("id", idType(dialect), (c) => c.primaryKey())
      .addColumn("username", "text", (c) => c.notNull().unique())
      .addColumn("password_hash", "text", (c) => c.notNull())
      .addColumn("mail_hash", "text", (c) => c.unique())
      .addColumn("state", "text", (c) => c.notNull().check(sql`state IN ('pending', 'active')`))
      .addColumn("token_hash", "text", (c) => c.unique())
      .addColumn("ip", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint")
      .addColumn("verified_at", "bigint")
      .execute();
    await createUsersIndexes(db);

    await db.schema
      .createTable("outbox")
      .addColumn("id", idType(dialect), (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull().check(sql`kind IN ('mail', 'event')`))
      .addColumn("user_id", "bigint")
      .addColumn("payload", "text")
      .addColumn("state", "text", (c) => c.notNull().defaultTo("queued").check(sql`state IN ('queued', 'sent', 'failed')`))
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
      .addColumn("lease_until", "bigint")
      .addColumn("last_error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("done_at", "bigint")
      .execute();
    await createOutboxIndexes(db);
  },
};
