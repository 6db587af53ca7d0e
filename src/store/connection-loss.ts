import { AppError } from "../errors.ts";

/*
 * What a PostgreSQL restart, a failover or an idle-connection reaper does to a pool: connections
 * end under statements in flight, between the statements of a transaction, and while idle. A
 * statement that met a lost connection runs once more, on a fresh connection, only where a second
 * run cannot answer differently from the first; otherwise the caller gets STORE_UNAVAILABLE (503
 * with Retry-After) and may try again itself.
 *
 * - A read, or a write whose second run changes nothing (markOutboxSent, deleteExpiredPending, …),
 *   runs again: `rerun`.
 * - A single write whose second run would answer differently (an insert of a unique key, a delete
 *   that reports whether it found the row) is not: the lost connection may have taken the commit
 *   with it, and a second run would answer 409/404 for a change that was made: `once`.
 * - A transaction that lost its connection before COMMIT was sent never committed: it runs again.
 *   One that lost it during COMMIT may or may not have committed (the outcome is unknown): it runs
 *   again only where the transaction's own effect can be looked up first (`settle`), or where a
 *   second run is harmless; otherwise 503.
 */

// admin_shutdown, crash_shutdown, cannot_connect_now; connection_exception and its kin.
const LOSS_SQLSTATES = new Set(["57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"]);
const LOSS_ERRNOS = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"]);
// pg's own words for a socket that ended under it, and for a client used after that.
const LOSS_MESSAGE = /Connection terminated unexpectedly|is not queryable/;

/** Whether `err` says the connection to PostgreSQL was lost (or could not be made), not that a statement was wrong. */
export function isConnectionLoss(err: unknown): boolean {
  if (!err || typeof err !== "object") return false;
  const e = err as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof e.code === "string" && (LOSS_SQLSTATES.has(e.code) || LOSS_ERRNOS.has(e.code))) return true;
  if (typeof e.message === "string" && LOSS_MESSAGE.test(e.message)) return true;
  // Node reports a refused connection to a name with several addresses as an AggregateError.
  return Array.isArray(e.errors) && e.errors.some(isConnectionLoss);
}

/** Thrown by a transaction whose connection was lost while COMMIT was under way: it may have committed. */
export class CommitOutcomeUnknown extends Error {
  constructor(readonly lost: unknown) {
    super(`connection lost during COMMIT: ${String(lost)}`);
  }
}

/** What to do when a transaction's COMMIT met a lost connection. */
export type IfCommitUnknown<T> =
  /** A second run is harmless (it finds the first one's work done and answers the same). */
  | "rerun"
  /** Nothing tells whether it committed: 503. */
  | "unavailable"
  /** Looks up the transaction's own effect: its result if it committed, null if it did not (then it runs again). */
  | (() => Promise<T | null>);

const RETRY_AFTER_SECONDS = 2;
/** Before the second run: lets the pool see the other connections the same event ended. */
const PAUSE_MS = 100;
/** At most one warning a second, however many connections one restart ends. */
const REPORT_EVERY_MS = 1000;

function unavailable(): AppError {
  return new AppError("STORE_UNAVAILABLE", "the database is unavailable; try again shortly", { retryAfter: RETRY_AFTER_SECONDS });
}

const pause = () => new Promise((resolve) => setTimeout(resolve, PAUSE_MS));

/** The retry-once policy above, and a rate-limited report of each loss. */
export class Reconnecting {
  #reportedAt = 0;
  #unreported = 0;

  constructor(private readonly report: (reason: string, alsoLost: number) => void) {}

  /** Notes a lost connection (a pooled one ending while idle, or one under a statement). */
  lost(err: unknown): void {
    const now = Date.now();
    if (now - this.#reportedAt < REPORT_EVERY_MS) {
      this.#unreported += 1;
      return;
    }
    this.report(err instanceof Error ? err.message : String(err), this.#unreported);
    this.#reportedAt = now;
    this.#unreported = 0;
  }

  /** A lost connection that has used its retry: STORE_UNAVAILABLE; anything else as it was. */
  #giveUp(err: unknown): unknown {
    const lost = err instanceof CommitOutcomeUnknown ? err.lost : err;
    if (!isConnectionLoss(lost)) return lost;
    this.lost(lost);
    return unavailable();
  }

  /** Runs `run` again on a lost connection: for reads and writes whose second run changes nothing. */
  rerun<T>(run: () => Promise<T>): Promise<T> {
    return this.transaction(run, "rerun");
  }

  /** Runs `run` once: a lost connection is STORE_UNAVAILABLE, since a second run could answer differently. */
  async once<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw this.#giveUp(err);
    }
  }

  /** Runs a transaction (which throws CommitOutcomeUnknown for a COMMIT that met a lost connection) with the policy above. */
  async transaction<T>(run: () => Promise<T>, ifCommitUnknown: IfCommitUnknown<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      const unknown = err instanceof CommitOutcomeUnknown;
      const lost = unknown ? err.lost : err;
      if (!isConnectionLoss(lost)) throw err;
      this.lost(lost);
      if (unknown && ifCommitUnknown === "unavailable") throw unavailable();
      await pause();
      if (unknown && typeof ifCommitUnknown === "function") {
        const settled = await this.once(ifCommitUnknown);
        if (settled !== null) return settled;
      }
    }
    try {
      return await run();
    } catch (err) {
      throw this.#giveUp(err);
    }
  }
}
