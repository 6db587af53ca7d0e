import pg from "pg";
import { PostgresDialect } from "kysely";
import type { Reconnecting } from "../connection-loss.ts";

/** BIGINT (ids, epoch-millisecond times, counts) as a number: every value the store keeps fits in 2^53. */
const INT8_OID = 20;

/** The connection pool for a `postgres://` URL; it may carry `?options=-c%20search_path%3D<schema>`. */
export function createPool(url: string, reconnecting: Reconnecting): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client whose connection drops is removed from the pool; without a listener the
  // 'error' event would end the process. The pool opens a new connection for the next query.
  pool.on("error", (err) => reconnecting.lost(err));
  // A checked-out client has no listener of the pool's: a connection lost between two statements
  // would emit 'error' with nobody listening, which ends the process. The next statement on that
  // client fails, and it is that failure that counts.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** The Kysely dialect for a `postgres://` URL. */
export function postgresDialect(url: string, reconnecting: Reconnecting): PostgresDialect {
  return new PostgresDialect({ pool: createPool(url, reconnecting) });
}
