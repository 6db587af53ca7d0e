import { sql } from "kysely";
import type { Migration } from "./types.ts";

/** claimOutbox looks up an account's earlier queued events to keep them in order. */
export const outboxEventOrder: Migration = {
  name: "003-outbox-event-order",
  async up(db) {
    await db.schema
      .createIndex("outbox_event_order")
      .on("outbox")
      .columns(["user_id", "id"])
      .where((eb) => eb.and([eb(sql.ref("state"), "=", "queued"), eb(sql.ref("kind"), "=", "event")]))
      .execute();
  },
};
