import type { AccountLineage, ProvisionJobState, Store } from "../store/store.ts";
import type { Clock, PayloadSealer, TargetDirectory } from "./ports.ts";
import { accountIssuerId } from "./accounts.ts";
import { inviteState } from "./invites.ts";
import { describeJob, removeJobs } from "./provisioning.ts";
import { nameForLookup } from "./username.ts";

export interface UserDeps {
  store: Pick<Store, "listLineage" | "listProvisionJobs" | "removeAccount" | "retryProvision" | "listInvites" | "revokeLiveInvitesOf">;
  clock: Clock;
  sealer: PayloadSealer;
  targets: TargetDirectory;
}

export { nameForLookup };

export interface UserListing extends AccountLineage {
  /** Per target of accounts.provision: ready, provisioning or "failed: reason" (DESIGN §9). */
  targets: { target: string; state: string }[];
}

export async function listUsers(deps: Pick<UserDeps, "store">): Promise<UserListing[]> {
  const [accounts, jobs] = await Promise.all([deps.store.listLineage(), deps.store.listProvisionJobs()]);
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

export interface InviteTreeNode {
  account: AccountLineage;
  /** The accounts it invited, oldest first. */
  invitees: InviteTreeNode[];
}

/**
 * Who invited whom, as trees: each account under the account that invited it, oldest first.
 * Roots are the accounts that no account in `accounts` invited.
 */
export function buildInviteForest(accounts: readonly AccountLineage[]): InviteTreeNode[] {
  const oldestFirst = [...accounts].sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
  const nodes = new Map(oldestFirst.map((account) => [account.id, { account, invitees: [] } as InviteTreeNode]));
  const roots: InviteTreeNode[] = [];
  for (const node of nodes.values()) {
    const inviter = node.account.inviterId === null ? undefined : nodes.get(node.account.inviterId);
    if (inviter) inviter.invitees.push(node);
    else roots.push(node);
  }
  return roots;
}

/** Every account of a tree, each before its invitees (without recursion: a chain may be long). */
export function walkInviteTree(root: InviteTreeNode, visit: (node: InviteTreeNode, depth: number, last: boolean[]) => void): void {
  const stack: { node: InviteTreeNode; last: boolean[] }[] = [{ node: root, last: [] }];
  for (let item = stack.pop(); item; item = stack.pop()) {
    visit(item.node, item.last.length, item.last);
    const { invitees } = item.node;
    for (let i = invitees.length - 1; i >= 0; i--) stack.push({ node: invitees[i]!, last: [...item.last, i === invitees.length - 1] });
  }
}

/** Every account of a tree, invitees before their inviter. */
function inviteesFirst(root: InviteTreeNode): AccountLineage[] {
  const order: AccountLineage[] = [];
  walkInviteTree(root, (node) => order.push(node.account));
  return order.reverse();
}

/** The invite tree from one account (null when there is no such account), or the trees of all accounts. */
export async function inviteTree(deps: { store: Pick<Store, "listLineage"> }, name?: string): Promise<InviteTreeNode[] | null> {
  if (name === undefined) return buildInviteForest(await deps.store.listLineage());
  const subtree = await deps.store.listLineage(nameForLookup(name));
  return subtree.length === 0 ? null : buildInviteForest(subtree);
}

export interface SubtreeDeletion {
  /** The tree that goes (or would go): the account and everyone it invited, all the way down. */
  tree: InviteTreeNode;
  /** The accounts deleted, invitees before their inviters; empty on a dry run. */
  deleted: string[];
  /** Invites those accounts had made that could still be used: withdrawn (or, on a dry run, would be). */
  invitesWithdrawn: number;
}

/**
 * Deletes an account and every account it invited, all the way down (a spam ring), each through
 * deleteUser, so the account servers remove them too (DESIGN §9, §11); the invites they made that
 * could still be used are withdrawn, or the ring would grow back through them. Invitees go before
 * their inviter: cut off halfway, the same command deletes the rest. With dryRun, nothing changes.
 * Null when there is no such account.
 */
export async function deleteUserWithInvitees(deps: UserDeps, name: string, options: { dryRun?: boolean } = {}): Promise<SubtreeDeletion | null> {
  const subtree = await deps.store.listLineage(nameForLookup(name));
  const [tree] = buildInviteForest(subtree);
  if (!tree) return null;
  const deleted: string[] = [];
  if (options.dryRun) {
    const issuers = new Set(subtree.map((account) => accountIssuerId(account.id)));
    const now = deps.clock.now();
    const live = (await deps.store.listInvites()).filter((i) => i.issuerKind === "user" && issuers.has(i.issuerId) && inviteState(i, now) === null);
    return { tree, deleted, invitesWithdrawn: live.length };
  }
  let invitesWithdrawn = 0;
  for (const account of inviteesFirst(tree)) {
    const removed = await deleteUser(deps, account.username);
    if (removed === null) continue;
    deleted.push(removed);
    invitesWithdrawn += await deps.store.revokeLiveInvitesOf(accountIssuerId(account.id), deps.clock.now());
  }
  return { tree, deleted, invitesWithdrawn };
}
