import { sql, type Kysely } from "kysely";
import type { Migration } from "./types.ts";

/** The index of this step; 007 rebuilds the outbox on SQLite and makes it again. */
export async function createEventOrderIndex(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex("outbox_event_order")
    .on("outbox")
    .columns(["user_id", "id"])
    .where((eb) => eb.and([eb(sql.ref("state"), "=", "queued"), eb(sql.ref("kind"), "=", "event")]))
    .execute();
}

/** claimOutbox looks up an account's earlier queued events to keep them in order. */
export const outboxEventOrder: Migration = {
  name: "003-outbox-event-order",
  up: createEventOrderIndex,
};
