import { sql } from "kysely";
import { createOutboxIndexes } from "./001-core.ts";
import { createEventOrderIndex } from "./003-outbox-event-order.ts";
import type { Migration } from "./types.ts";

/**
 * Provisioning (DESIGN §9): jobs are outbox items of kind 'provision' naming their target; the
 * password (and address) a target needs in the clear waits, sealed, with the pending row only.
 * SQLite cannot change a CHECK constraint, so there the outbox is rebuilt from its own definition
 * with the new kind allowed (as 004 rebuilds users); PostgreSQL swaps the constraint.
 */
export const provision: Migration = {
  name: "007-provision",
  async up(db, dialect) {
    if (dialect === "sqlite") {
      const { rows } = await sql<{ sql: string }>`SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'outbox'`.execute(db);
      const definition = rows[0]?.sql ?? "";
      const rebuilt = definition
        .replace(/^CREATE TABLE "?outbox"?/i, 'CREATE TABLE "outbox_new"')
        .replace(/(kind"? in \('mail', 'event')\)/i, "$1, 'provision')");
      if (!/^CREATE TABLE "outbox_new"/.test(rebuilt) || !/'event', 'provision'\)/.test(rebuilt)) {
        throw new Error("007: the outbox table does not have the definition this step rebuilds");
      }
      await sql.raw(rebuilt).execute(db);
      await sql`INSERT INTO outbox_new SELECT * FROM outbox`.execute(db);
      await db.schema.dropTable("outbox").execute();
      await db.schema.alterTable("outbox_new").renameTo("outbox").execute();
      await createOutboxIndexes(db);
      await createEventOrderIndex(db);
    } else {
      await db.schema.alterTable("outbox").dropConstraint("outbox_kind_check").execute();
      await db.schema.alterTable("outbox").addCheckConstraint("outbox_kind_check", sql`kind IN ('mail', 'event', 'provision')`).execute();
    }
    await db.schema.alterTable("outbox").addColumn("target", "text").execute();
    await db.schema
      .createIndex("outbox_provision_open")
      .on("outbox")
      .column("user_id")
      .where((eb) => eb.and([eb(sql.ref("kind"), "=", "provision"), eb(sql.ref("state"), "<>", "sent")]))
      .execute();
    await db.schema.alterTable("users").addColumn("sealed_secret", "text").execute();
  },
};
