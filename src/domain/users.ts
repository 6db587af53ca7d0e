import type { AccountSummary, ProvisionJobState, Store } from "../store/store.ts";
import type { Clock, PayloadSealer, TargetDirectory } from "./ports.ts";
import { describeJob, removeJobs } from "./provisioning.ts";
import { prepareUsername } from "./username.ts";

export interface UserDeps {
  store: Pick<Store, "listAccounts" | "listProvisionJobs" | "removeAccount" | "retryProvision">;
  clock: Clock;
  sealer: PayloadSealer;
  targets: TargetDirectory;
}

/** The name an operator typed, in the form accounts are stored under when it is a valid name. */
export function nameForLookup(name: string): string {
  const prepared = prepareUsername(name);
  return prepared.ok ? prepared.username : name;
}

export interface UserListing extends AccountSummary {
  /** Per target of accounts.provision: ready, provisioning or "failed: reason" (DESIGN §9). */
  targets: { target: string; state: string }[];
}

export async function listUsers(deps: Pick<UserDeps, "store">): Promise<UserListing[]> {
  const [accounts, jobs] = await Promise.all([deps.store.listAccounts(), deps.store.listProvisionJobs()]);
  const byAccount = new Map<number, ProvisionJobState[]>();
  for (const job of jobs) {
    const list = byAccount.get(job.userId);
    if (list) list.push(job);
    else byAccount.set(job.userId, [job]);
  }
  return accounts.map((account) => ({
    ...account,
    targets: (byAccount.get(account.id) ?? []).map((job) => ({ target: job.target, state: describeJob(job) })),
  }));
}

/**
 * Deletes an account and frees its mail address; the account servers remove it through retried
 * jobs (DESIGN §9). The stored name, or null when there is no such account.
 */
export async function deleteUser(deps: UserDeps, name: string): Promise<string | null> {
  const username = nameForLookup(name);
  const now = deps.clock.now();
  const removed = await deps.store.removeAccount(username, now, () => removeJobs(deps, username, now));
  return removed ? username : null;
}

/** Makes an account's waiting or failed provisioning jobs due now; null when there is no such account. */
export async function provisionUser(deps: Pick<UserDeps, "store" | "clock">, name: string): Promise<{ username: string; jobs: number } | null> {
  const username = nameForLookup(name);
  const jobs = await deps.store.retryProvision(username, deps.clock.now());
  return jobs === null ? null : { username, jobs };
}
