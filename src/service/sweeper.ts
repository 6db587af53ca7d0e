import type { Logger } from "pino";
import type { AppContext } from "../context.ts";
import { expireApprovals } from "../domain/approval.ts";
import { isStoreUnavailable } from "../errors.ts";

const SWEEP_MS = 60_000;

/** The context itself, not a copy: a config reload changes the pending lifetime the sweep reads. */
export type SweepDeps = Pick<AppContext, "store" | "clock" | "config" | "metrics" | "log" | "sealer" | "notifyOutbox">;

/**
 * Removes expired pending registrations, waits for approval that ran out (mailing the person) and
 * sessions, forgets old verified tokens, and purges erased rows.
 */
export async function sweep(deps: SweepDeps): Promise<void> {
  const { store, log } = deps;
  const now = deps.clock.now();
  try {
    const voided = await store.deleteExpiredPending(now);
    const unapproved = await expireApprovals(deps);
    await store.forgetTokensVerifiedBefore(now - deps.config.register.pendingTtlSeconds * 1000);
    await store.deleteExpiredSessions(now);
    await store.purgeErased();
    if (voided > 0) {
      deps.metrics.expirations.inc(voided);
      log.info({ count: voided }, "expired pending registrations removed");
    }
    if (unapproved > 0) {
      deps.metrics.approvals.inc({ outcome: "expired" }, unapproved);
      log.info({ count: unapproved }, "registrations nobody approved in time removed");
    }
  } catch (err) {
    logSweepFailure(log, err);
  }
}

/** A failed sweep is not fatal: the next one, a minute later, does the same work again. */
function logSweepFailure(log: Logger, err: unknown): void {
  // A database outage is retried by the next sweep.
  log[isStoreUnavailable(err) ? "warn" : "error"]({ err: String(err) }, "sweep failed");
}

export function startSweeper(deps: SweepDeps, intervalMs = SWEEP_MS): { stop(): void } {
  const timer = setInterval(() => void sweep(deps), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
