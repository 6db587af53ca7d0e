import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { offeredLanguage } from "../languages.ts";
import type { Store } from "../store/store.ts";
import { checkPassword, nameHeldError, prepareRequestedName, refuseHeldName, refuseReservedName } from "./accounts.ts";
import { addressKey, findDisposableBlock, findMailFilter, findRange, parseIp, type Rules } from "./filters.ts";
import type { Limiters } from "./limiter.ts";
import type { CanonicalMail } from "./mail-address.ts";
import { mailItem } from "./outbox-items.ts";
import { hashPassword } from "./passwords.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, RandomSource, TargetDirectory } from "./ports.ts";
import { refuseNameTakenDownstream, sealProvisionSecret } from "./provisioning.ts";
import { createToken, hashMail, hashToken, matchesAnySecret } from "./secrets.ts";
import { usernameSkeleton } from "./username.ts";
import type { WriteHealth } from "./write-health.ts";

/** A registration as mod_register_json's clients send it, already checked for shape. */
export interface RegistrationRequest {
  username: string;
  password: string;
  ip: string;
  /** Already in the one form that is filtered, hashed and mailed. */
  mail: CanonicalMail;
  auth_token: string;
  /** The language the website's page was in (a BCP 47 tag); one not offered gets the default. */
  lang?: string;
}

export interface PendingRegistration {
  username: string;
  /** The verification token: returned to the website and mailed; stored only as a hash. */
  token: string;
  expiresAt: number;
}

export interface RegisterDeps {
  config: Config;
  rules: Rules;
  store: Store;
  limiters: Limiters;
  clock: Clock;
  random: RandomSource;
  /** Keys the mail hash. */
  secret: string;
  sealer: PayloadSealer;
  notifyOutbox: OutboxNotifier;
  writeHealth: WriteHealth;
  targets: TargetDirectory;
  log: EventLog;
}

export function verifyLink(config: Pick<Config, "publicUrl" | "register">, token: string): string {
  return `${config.publicUrl}${config.register.basePath}verify/${encodeURIComponent(token)}`;
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
  const skeleton = usernameSkeleton(username);
  refuseReservedName(deps, username, skeleton);

  const now = clock.now();
  await refuseHeldName(deps, username, skeleton, now, "USERNAME_PENDING");
  // DESIGN §9: the name must be free on every account server too; one that does not answer is a 503.
  await refuseNameTakenDownstream(deps, username);

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
    const lang = offeredLanguage(input.lang, config.languages);
    const outbox = config.register.sendMail
      ? [
          mailItem(deps, {
            template: "verify",
            to: mail,
            lang,
            model: {
              username,
              link: verifyLink(config, token),
              expiresAt,
            },
          }, now),
        ]
      : [];
    const result = await store.insertPending(
      {
        username, skeleton, passwordHash, mailHash, tokenHash: hashToken(token), ip: ip.toString(), createdAt: now, expiresAt,
        sealedSecret: sealProvisionSecret(deps, passwordHash, input.password, mail),
        lang,
      },
      outbox,
    );
    if (!result.ok) {
      // Lost a race with a concurrent request: the database constraint decided, report like the checks above.
      if (result.conflict === "mail") throw new AppError("MAIL_TAKEN", "this mail address is already in use");
      const winner = await store.findNameHolder(username, now);
      throw nameHeldError({ holder: winner ?? "pending", lookalike: false }, "USERNAME_PENDING");
    }
    if (outbox.length > 0) deps.notifyOutbox();
    return { username, token, expiresAt };
  } catch (err) {
    if (throttled) await limiters.throttle!.giveBack(throttleKey);
    throw err;
  }
}
