import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import type { Rules } from "./filters.ts";
import { passwordLength } from "./passwords.ts";
import { prepareUsername, usernameSkeleton } from "./username.ts";

// The account rules every way in shares (registration, invitation): a name is prepared, checked
// against the reserved names and the names already held, and a password against the length rule,
// here and nowhere else.

/** Usernames are prepared and refused by the same rules whether they arrive by registration or invitation. */
export function prepareRequestedName(requested: string): string {
  const prepared = prepareUsername(requested);
  if (!prepared.ok) throw new AppError("USERNAME_INVALID", prepared.reason);
  return prepared.username;
}

/** The skeletons of accounts.reservedUsernames, compiled once per (re)load into the rules. */
export function reservedSkeletons(reservedUsernames: readonly string[]): Set<string> {
  return new Set(
    reservedUsernames.map((name) => {
      const prepared = prepareUsername(name);
      return usernameSkeleton(prepared.ok ? prepared.username : name.toLowerCase());
    }),
  );
}

/** Compared by confusable skeleton, so `аdmin` (Cyrillic а) or `admın` (dotless ı) is as reserved as `admin`. */
export function refuseReservedName(deps: { rules: Pick<Rules, "reservedSkeletons"> }, username: string, skeleton = usernameSkeleton(username)): void {
  if (deps.rules.reservedSkeletons.has(skeleton)) throw new AppError("USERNAME_RESERVED", "this username is reserved");
}

type NameHolderDeps = { store: Pick<Store, "findNameHolder" | "findSkeletonHolder"> };
/** What a name held by a pending registration is answered: a registration says "pending", an invite "taken". */
type PendingAs = "USERNAME_PENDING" | "USERNAME_TAKEN";

export interface NameHolder {
  holder: "pending" | "account";
  /** Held by a different name with the same confusable skeleton, not by this very name. */
  lookalike: boolean;
}

/**
 * Who holds this name, or a name that looks like it (the same UTS #39 skeleton); a look-alike is
 * refused exactly as the name it resembles would be. Registrations and invites both ask here.
 */
async function findNameHolder(deps: NameHolderDeps, username: string, skeleton: string, now: number): Promise<NameHolder | null> {
  const exact = await deps.store.findNameHolder(username, now);
  if (exact) return { holder: exact, lookalike: false };
  const similar = await deps.store.findSkeletonHolder(skeleton, now);
  return similar ? { holder: similar, lookalike: true } : null;
}

/** Refuses a name that an account or a pending registration holds, or one that looks like it. */
export async function refuseHeldName(
  deps: NameHolderDeps,
  username: string,
  skeleton: string,
  now: number,
  pendingAs: PendingAs,
): Promise<void> {
  const held = await findNameHolder(deps, username, skeleton, now);
  if (held) throw nameHeldError(held, pendingAs);
}

/** The refusal for a held name: 409 for an account (row 12), and, from a registration, 401 for a pending one (row 11). */
export function nameHeldError(held: NameHolder, pendingAs: PendingAs): AppError {
  const code = held.holder === "account" ? "USERNAME_TAKEN" : pendingAs;
  const what = code === "USERNAME_TAKEN" ? "already taken" : "already pending registration";
  return new AppError(code, held.lookalike ? `this username looks like one that is ${what}` : `this username is ${what}`);
}

export function checkPassword(deps: { config: { accounts: Pick<Config["accounts"], "minPasswordLength"> } }, password: string): void {
  const min = deps.config.accounts.minPasswordLength;
  if (passwordLength(password) < min) throw new AppError("PASSWORD_TOO_SHORT", `password must be at least ${min} characters`, { values: { count: min } });
}
