import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { queueMail } from "../mail/outbox.ts";
import { addressKey, findDisposableBlock, findMailFilter, findRange, parseIp } from "./filters.ts";
import { hashPassword, passwordLength } from "./passwords.ts";
import type { CanonicalMail } from "./mail-address.ts";
import { createToken, hashMail, hashToken, matchesAnySecret } from "./secrets.ts";
import { prepareUsername, usernameSkeleton } from "./username.ts";

/** A registration as mod_register_json's clients send it, already checked for shape. */
export interface RegistrationRequest {
  username: string;
  password: string;
  ip: string;
  /** Already in the one form that is filtered, hashed and mailed. */
  mail: CanonicalMail;
  auth_token: string;
}

export interface PendingRegistration {
  username: string;
  /** The verification token: returned to the website and mailed; stored only as a hash. */
  token: string;
  expiresAt: number;
}

export type RegisterDeps = Pick<
  AppContext,
  "config" | "rules" | "store" | "limiters" | "clock" | "random" | "secret" | "sealer" | "notifyOutbox" | "writeHealth"
>;

export function verifyLink(config: AppContext["config"], token: string): string {
  return `${config.publicUrl}${config.register.basePath}verify/${encodeURIComponent(token)}`;
}

/** Usernames are prepared and refused by the same rules whether they arrive by registration or invitation. */
export function prepareRequestedName(requested: string): string {
  const prepared = prepareUsername(requested);
  if (!prepared.ok) throw new AppError("USERNAME_INVALID", prepared.reason);
  return prepared.username;
}

/** Compared by confusable skeleton, so `аdmin` (Cyrillic а) or `admın` (dotless ı) is as reserved as `admin`. */
export function refuseReservedName(deps: Pick<AppContext, "rules">, username: string): void {
  if (deps.rules.reservedSkeletons.has(usernameSkeleton(username))) throw new AppError("USERNAME_RESERVED", "this username is reserved");
}

export interface NameHolder {
  holder: "pending" | "account";
  /** Held by a different name with the same confusable skeleton, not by this very name. */
  lookalike: boolean;
}

/**
 * Who holds this name, or a name that looks like it (the same UTS #39 skeleton); a look-alike is
 * refused exactly as the name it resembles would be. Registrations and invites both ask here.
 */
export async function findNameHolder(deps: Pick<AppContext, "store">, username: string, skeleton: string, now: number): Promise<NameHolder | null> {
  const exact = await deps.store.findNameHolder(username, now);
  if (exact) return { holder: exact, lookalike: false };
  const similar = await deps.store.findSkeletonHolder(skeleton, now);
  return similar ? { holder: similar, lookalike: true } : null;
}

/** The refusal for a held name: 409 for an account (row 12), and, from a registration, 401 for a pending one (row 11). */
export function nameHeldError(held: NameHolder, pendingAs: "USERNAME_PENDING" | "USERNAME_TAKEN"): AppError {
  const code = held.holder === "account" ? "USERNAME_TAKEN" : pendingAs;
  const what = code === "USERNAME_TAKEN" ? "already taken" : "already pending registration";
  return new AppError(code, held.lookalike ? `this username looks like one that is ${what}` : `this username is ${what}`);
}

export function checkPassword(deps: Pick<AppContext, "config">, password: string): void {
  const min = deps.config.accounts.minPasswordLength;
  if (passwordLength(password) < min) throw new AppError("PASSWORD_TOO_SHORT", `password must be at least ${min} characters`);
}

/**
 * The checks of mod_register_json in their contract order (DESIGN §3, rows 5–14); the first
 * failure wins. Every cheap check runs before the password is hashed, and the throttle point
 * is given back when a later check refuses, so only stored registrations count against an IP.
 */
export async function registerPending(deps: RegisterDeps, input: RegistrationRequest, peer: string): Promise<PendingRegistration> {
  const { config, rules, store, limiters, clock } = deps;

  // A right token always goes through: whoever shares the website's address (a NAT, a proxy
  // with trustProxy off) can only get their own wrong tokens answered 429.
  if (!matchesAnySecret(input.auth_token, rules.authTokenDigests)) {
    const wait = await limiters.authFailures.take(addressKey(peer, config.register.ipv6Prefix));
    if (wait !== null) {
      throw new AppError("TOO_MANY_ATTEMPTS", "too many bad auth tokens from this address", { retryAfter: Math.ceil(wait / 1000) });
    }
    throw new AppError("AUTH_TOKEN_INVALID", "auth_token is not valid");
  }

  const ip = parseIp(input.ip);
  if (!ip) throw new AppError("MALFORMED_REQUEST", "ip is not an IP address");
  if (findRange(ip, rules.blacklist)) throw new AppError("IP_BLACKLISTED", "registrations from this address are not allowed");

  const mail = input.mail;
  if (findMailFilter(mail, rules)) throw new AppError("MAIL_FILTERED", "registrations with this mail address are not allowed");
  // A mail rule too (row 7); the domain named is the list's, never the person's address.
  const disposable = findDisposableBlock(mail, rules);
  if (disposable) throw new AppError("MAIL_DISPOSABLE", `registrations with disposable mail addresses (${disposable}) are not allowed`);

  const username = prepareRequestedName(input.username);
  checkPassword(deps, input.password);
  refuseReservedName(deps, username);

  const now = clock.now();
  const skeleton = usernameSkeleton(username);
  const held = await findNameHolder(deps, username, skeleton, now);
  if (held) throw nameHeldError(held, "USERNAME_PENDING");

  const throttleKey = addressKey(ip, config.register.ipv6Prefix);
  const throttled = config.register.throttleSeconds > 0 && limiters.throttle !== null && !findRange(ip, rules.whitelist);
  if (throttled) {
    const wait = await limiters.throttle!.take(throttleKey);
    if (wait !== null) {
      throw new AppError("THROTTLED", "too many registrations from this address; try again later", { retryAfter: Math.ceil(wait / 1000) });
    }
  }

  try {
    const mailHash = hashMail(deps.secret, mail);
    if (await store.isMailHashHeld(mailHash, now)) throw new AppError("MAIL_TAKEN", "this mail address is already in use");

    const token = createToken(deps.random);
    const expiresAt = now + config.register.pendingTtlSeconds * 1000;
    await deps.writeHealth.checkWritable(store, now);
    const passwordHash = await hashPassword(input.password);
    const outbox = config.register.sendMail
      ? [
          queueMail(deps, {
            template: "verify",
            to: mail,
            model: {
              username,
              link: verifyLink(config, token),
              expiresAt: new Date(expiresAt).toUTCString(),
              siteUrl: config.publicUrl,
            },
          }, now),
        ]
      : [];
    const result = await store.insertPending(
      { username, skeleton, passwordHash, mailHash, tokenHash: hashToken(token), ip: ip.toString(), createdAt: now, expiresAt },
      outbox,
    );
    if (!result.ok) {
      // Lost a race with a concurrent request: the database constraint decided, report like the checks above.
      if (result.conflict === "mail") throw new AppError("MAIL_TAKEN", "this mail address is already in use");
      const winner = await store.findNameHolder(username, now);
      if (winner === "account") throw new AppError("USERNAME_TAKEN", "this username is already taken");
      throw new AppError("USERNAME_PENDING", "this username is already pending registration");
    }
    if (outbox.length > 0) deps.notifyOutbox();
    return { username, token, expiresAt };
  } catch (err) {
    if (throttled) await limiters.throttle!.giveBack(throttleKey);
    throw err;
  }
}
