import type { AccountSummary, Store } from "../store/store.ts";
import { prepareUsername } from "./username.ts";

export interface UserDeps {
  store: Pick<Store, "listAccounts" | "deleteAccount">;
}

/** The name an operator typed, in the form accounts are stored under when it is a valid name. */
export function nameForLookup(name: string): string {
  const prepared = prepareUsername(name);
  return prepared.ok ? prepared.username : name;
}

export function listUsers(deps: UserDeps): Promise<AccountSummary[]> {
  return deps.store.listAccounts();
}

/** Deletes an account and frees its mail address; the stored name, or null when there is no such account. */
export async function deleteUser(deps: UserDeps, name: string): Promise<string | null> {
  const username = nameForLookup(name);
  return (await deps.store.deleteAccount(username)) ? username : null;
}
