import pg from "pg";
import { PostgresDialect } from "kysely";

/** BIGINT (ids, epoch-millisecond times, counts) as a number: every value the store keeps fits in 2^53. */
const INT8_OID = 20;

/** The connection pool for a `postgres://` URL; it may carry `?options=-c%20search_path%3D<schema>`. */
export function createPool(url: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary") =>
        oid === INT8_OID ? Number : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client whose connection drops is removed from the pool; without a listener the
  // 'error' event would end the process. The next query reports an outage that persists.
  pool.on("error", () => {});
  return pool;
}

/** The Kysely dialect for a `postgres://` URL. */
export function postgresDialect(url: string): PostgresDialect {
  return new PostgresDialect({ pool: createPool(url) });
}
