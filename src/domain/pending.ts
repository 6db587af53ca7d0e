import type { PendingSummary, Store } from "../store/store.ts";

export interface PendingDeps {
  store: Pick<Store, "listPending">;
  clock: { now(): number };
}

/** Registrations still waiting for their verification, as of the clock. */
export function listPending(deps: PendingDeps): Promise<PendingSummary[]> {
  return deps.store.listPending(deps.clock.now());
}
