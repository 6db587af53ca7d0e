import type { PendingSummary, RequeueMailResult, Store } from "../store/store.ts";
import { nameForLookup } from "./users.ts";

export interface PendingDeps {
  store: Pick<Store, "listPending" | "requeuePendingMail">;
  clock: { now(): number };
}

/** Registrations still waiting for their verification, as of the clock. */
export function listPending(deps: PendingDeps): Promise<PendingSummary[]> {
  return deps.store.listPending(deps.clock.now());
}

/** Queues a pending registration's verification mail again, due now (an admin's "send it again"). */
export async function resendVerificationMail(deps: PendingDeps, name: string): Promise<{ username: string; result: RequeueMailResult }> {
  const username = nameForLookup(name);
  return { username, result: await deps.store.requeuePendingMail(username, deps.clock.now()) };
}
