import { sql } from "kysely";
import { core } from "./001-core.ts";
import { keysInvitesSessions } from "./002-keys-invites-sessions.ts";
import { outboxEventOrder } from "./003-outbox-event-order.ts";
import { usersAutoincrement } from "./004-users-autoincrement.ts";
import { usersSkeleton } from "./005-users-skeleton.ts";
import { fillSkeletons } from "./006-fill-skeletons.ts";
import { provision } from "./007-provision.ts";
import { recordStep, type Migration } from "./types.ts";

/**
 * The steps a database made before this list existed already has. SQLite files counted their
 * steps in `PRAGMA user_version` (1 to 7 were the steps 001 to 007); PostgreSQL schemas kept
 * `schema_migrations`, where version 1 made what 001 and 002 make, version 2 was 003, 3 was 005,
 * 4 was 006 and 5 was 007 (004 changes nothing on PostgreSQL). The old bookkeeping is left as it was.
 */
const SQLITE_VERSIONS = [core, keysInvitesSessions, outboxEventOrder, usersAutoincrement, usersSkeleton, fillSkeletons, provision];
const POSTGRES_VERSIONS = [[core, keysInvitesSessions], [outboxEventOrder], [usersSkeleton], [fillSkeletons], [provision]];

/** Records the steps an existing database has had, so the runner applies only the rest; on an empty one it records nothing. */
export const adopt: Migration = {
  name: "000-adopt",
  async up(db, dialect) {
    let had: Migration[];
    if (dialect === "sqlite") {
      const { rows } = await sql<{ user_version: number }>`PRAGMA user_version`.execute(db);
      had = SQLITE_VERSIONS.slice(0, rows[0]?.user_version ?? 0);
    } else {
      const { rows } = await sql<{ present: boolean }>`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`.execute(db);
      let version = 0;
      if (rows[0]?.present) {
        const versions = await sql<{ version: number }>`SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations`.execute(db);
        version = Number(versions.rows[0]?.version ?? 0);
      }
      had = POSTGRES_VERSIONS.slice(0, version).flat();
    }
    for (const step of had) await recordStep(db, step.name);
  },
};
