import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { queueMail } from "../mail/outbox.ts";
import { addressKey, findDisposableBlock, findMailFilter, findRange, parseIp } from "./filters.ts";
import { hashPassword, passwordLength } from "./passwords.ts";
import { createToken, hashMail, hashToken, matchesAnySecret, normalizeMail } from "./secrets.ts";
import { prepareUsername } from "./username.ts";

/** A registration as mod_register_json's clients send it, already checked for shape. */
export interface RegistrationRequest {
  username: string;
  password: string;
  ip: string;
  mail: string;
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
  "config" | "rules" | "store" | "limiters" | "clock" | "random" | "secret" | "sealer" | "notifyOutbox"
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

export function refuseReservedName(deps: Pick<AppContext, "rules">, username: string): void {
  if (deps.rules.reserved.has(username)) throw new AppError("USERNAME_RESERVED", "this username is reserved");
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

  const mail = normalizeMail(input.mail);
  if (findMailFilter(mail, rules)) throw new AppError("MAIL_FILTERED", "registrations with this mail address are not allowed");
  // A mail rule too (row 7); the domain named is the list's, never the person's address.
  const disposable = findDisposableBlock(mail, rules);
  if (disposable) throw new AppError("MAIL_DISPOSABLE", `registrations with disposable mail addresses (${disposable}) are not allowed`);

  const username = prepareRequestedName(input.username);
  checkPassword(deps, input.password);
  refuseReservedName(deps, username);

  const now = clock.now();
  const holder = await store.findNameHolder(username, now);
  if (holder === "pending") throw new AppError("USERNAME_PENDING", "this username is already pending registration");
  if (holder === "account") throw new AppError("USERNAME_TAKEN", "this username is already taken");

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
    const passwordHash = await hashPassword(input.password);
    const outbox = config.register.sendMail
      ? [
          queueMail(deps, {
            template: "verify",
            to: input.mail.trim(),
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
      { username, passwordHash, mailHash, tokenHash: hashToken(token), ip: ip.toString(), createdAt: now, expiresAt },
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
