import type { Migration } from "./types.ts";

/**
 * Resending the verification mail (DESIGN §11): how many new links a pending registration has had,
 * so `register.resendLimit` holds across instances and restarts.
 */
export const resendCount: Migration = {
  name: "010-resend-count",
  async up(db) {
    await db.schema.alterTable("users").addColumn("resend_count", "integer", (c) => c.notNull().defaultTo(0)).execute();
  },
};
