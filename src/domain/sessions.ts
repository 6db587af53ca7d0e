import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { Store } from "../store/store.ts";
import { addressKey } from "./filters.ts";
import type { Limiters } from "./limiter.ts";
import { hashPassword, verifyPassword } from "./passwords.ts";
import type { Clock, EventLog, RandomSource } from "./ports.ts";
import { createToken, hashToken } from "./secrets.ts";
import { prepareUsername } from "./username.ts";

/** Sessions last 30 days from their last use ("the cookie will expire if it is not used regularly"). */
export const SESSION_TTL_MS = 30 * 24 * 3600 * 1000;
// Extending on every request would write on every request; once a day is enough.
const EXTEND_AFTER_MS = 24 * 3600 * 1000;

export interface SessionDeps {
  store: Store;
  clock: Clock;
  random: RandomSource;
}

export interface Session {
  token: string;
  userId: number;
  username: string;
}

export async function createSession(deps: SessionDeps, account: { id: number; username: string }): Promise<Session> {
  const token = createToken(deps.random, 32);
  const now = deps.clock.now();
  await deps.store.insertSession(hashToken(token), account.id, now, now + SESSION_TTL_MS);
  return { token, userId: account.id, username: account.username };
}

export async function findSession(deps: SessionDeps, token: string | undefined): Promise<Session | null> {
  if (!token || token.length > 256) return null;
  const tokenHash = hashToken(token);
  const now = deps.clock.now();
  const found = await deps.store.findSession(tokenHash, now);
  if (!found) return null;
  if (found.expiresAt - now < SESSION_TTL_MS - EXTEND_AFTER_MS) await deps.store.extendSession(tokenHash, now + SESSION_TTL_MS);
  return { token, userId: found.userId, username: found.username };
}

export async function endSession(deps: SessionDeps, token: string | undefined): Promise<void> {
  if (token && token.length <= 256) await deps.store.deleteSession(hashToken(token));
}

let dummyHash: Promise<string> | null = null;
/** A real Argon2 hash to verify against when the name is unknown, so both answers take as long. */
function hashForUnknownNames(): Promise<string> {
  // A hash refused while the queue was full must not be remembered as the answer.
  dummyHash ??= hashPassword("gatehouse: no such account").catch((err: unknown) => {
    dummyHash = null;
    throw err;
  });
  return dummyHash;
}

export interface LoginDeps extends SessionDeps {
  config: Config;
  limiters: Limiters;
  log: EventLog;
}

/**
 * Name and password to a session; the same 401 whether the name exists or not. Failures count
 * per (address, name) and per address, never per name alone: what happens at other addresses
 * cannot refuse a right password. A blocked key is refused before any Argon2 work.
 */
export async function login(deps: LoginDeps, name: string, password: string, peer: string): Promise<Session> {
  const { loginPairFailures, loginAddressFailures } = deps.limiters;
  const prepared = prepareUsername(name);
  const username = prepared.ok ? prepared.username : "";
  const address = addressKey(peer, deps.config.register.ipv6Prefix);
  // A name that cannot be prepared has no account to protect: the address alone counts it.
  const pair = username ? `${address}|${username}` : null;
  const wait = (await loginAddressFailures.blockedFor(address)) ?? (pair ? await loginPairFailures.blockedFor(pair) : null);
  if (wait !== null) throw new AppError("TOO_MANY_ATTEMPTS", "too many failed logins; try again later", { retryAfter: Math.ceil(wait / 1000) });

  const account = username ? await deps.store.findLogin(username) : null;
  const ok = await verifyPassword(account?.passwordHash ?? (await hashForUnknownNames()), password);
  if (!account || !ok) {
    await loginAddressFailures.take(address);
    if (pair) await loginPairFailures.take(pair);
    throw new AppError("LOGIN_FAILED", "name or password is wrong");
  }
  if (pair) await loginPairFailures.forget(pair);
  deps.log.info({ event: "login", username: account.username, userId: account.id }, "login");
  return createSession(deps, account);
}
