import type { Migration } from "./types.ts";

/**
 * Look-alike names (DESIGN §7 "Identities"): a new name is refused when its UTS #39 skeleton is an
 * account's or a live pending registration's. Not unique: names already stored may share one.
 */
export const usersSkeleton: Migration = {
  name: "005-users-skeleton",
  async up(db) {
    await db.schema.alterTable("users").addColumn("skeleton", "text").execute();
    await db.schema.createIndex("users_skeleton").on("users").column("skeleton").execute();
  },
};
