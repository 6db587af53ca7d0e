import { sql } from "kysely";
import { createOutboxIndexes } from "./001-core.ts";
import { createEventOrderIndex } from "./003-outbox-event-order.ts";
import { rebuildSqliteTable, type Migration } from "./types.ts";

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
      await rebuildSqliteTable(
        db,
        "outbox",
        (definition) => {
          const rebuilt = definition.replace(/(kind"? in \('mail', 'event')\)/i, "$1, 'provision')");
          return rebuilt === definition ? null : rebuilt;
        },
        "007",
      );
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
