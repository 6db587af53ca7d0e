import { usernameSkeleton } from "../../domain/username.ts";
import type { Migration } from "./types.ts";

/** Rows a batch reads and updates. */
const BATCH = 1000;

/** Gives every row stored before the skeleton column its skeleton (computed here: SQL cannot), a batch at a time. */
export const fillSkeletons: Migration = {
  name: "006-fill-skeletons",
  async up(db) {
    for (let last = -1; ; ) {
      const rows: { id: number | string; username: string }[] = await db
        .selectFrom("users")
        .select(["id", "username"])
        .where("id", ">", last)
        .orderBy("id")
        .limit(BATCH)
        .execute();
      if (rows.length === 0) return;
      for (const row of rows) {
        await db.updateTable("users").set({ skeleton: usernameSkeleton(row.username) }).where("id", "=", row.id).execute();
      }
      last = Number(rows.at(-1)!.id);
    }
  },
};
