import type { Logger } from "pino";
import { ProvisionTargets } from "./accounts/from-config.ts";
import type { Config } from "./config.ts";
import { compileRules, type Rules } from "./domain/filters.ts";
import { createFormLimiters, createLimiters, createThrottle, memoryBacking, type FormLimiters, type LimiterBacking, type Limiters } from "./domain/limiter.ts";
import { systemClock, type Clock, type RandomSource } from "./domain/ports.ts";
import { createToken, cryptoRandom, derivePowKeys, matchesAnySecret, Sealer, sha256, type PowKeys } from "./domain/secrets.ts";
import { WriteHealth } from "./domain/write-health.ts";
import { createMailTransport, type MailTransport } from "./mail/transport.ts";
import { Metrics } from "./metrics.ts";
import type { Store } from "./store/store.ts";
import { Templates } from "./templates.ts";

// Declared by the domain (its ports); re-exported for the callers that build a context.
export { systemClock, type Clock };

/**
 * The composition root's bag: it satisfies every domain function's declared deps (domain/ports.ts
 * and the Deps type beside each function) and every route's narrow Pick of it.
 */
export interface AppContext {
  config: Config;
  rules: Rules;
  store: Store;
  mailer: MailTransport;
  limiters: Limiters;
  /** What antibot.proofOfWork "auto" counts, and the used challenges (DESIGN §11). */
  formLimiters: FormLimiters;
  /** HMAC keys of the proof-of-work challenges, derived from the service secret. */
  powKeys: PowKeys;
  /** Where the limiters count; kept so a reload can build a new throttle on the same backing. */
  limiterBacking: LimiterBacking;
  clock: Clock;
  random: RandomSource;
  log: Logger;
  /** Key for mail hashes and sealed outbox payloads. */
  secret: string;
  sealer: Sealer;
  templates: Templates;
  metrics: Metrics;
  /** Tells the outbox sender there is new work, so mail does not wait for its next poll. */
  notifyOutbox: () => void;
  /** Whether the store was last found full, so requests can be refused before an Argon2 hash. */
  writeHealth: WriteHealth;
  /** The account servers of accounts.provision (DESIGN §9), rebuilt by a reload where they changed. */
  targets: ProvisionTargets;
}

export interface ContextOptions {
  log: Logger;
  clock?: Clock;
  random?: RandomSource;
  limiterBacking?: LimiterBacking;
}

/**
 * An operator's own secret (config file, environment or a secret file) never enters the store. One
 * the store kept from before is removed when it is the same; a different one would leave every
 * mail hash and sealed payload made with the stored one unreadable, so start-up is refused.
 */
async function keepSecretOutOfStore(store: Store, secret: string, warn: (message: string) => void): Promise<void> {
  const stored = await store.findStoredSecret();
  if (stored === null) return;
  if (!matchesAnySecret(secret, [sha256(stored)])) {
    throw new Error(
      "the configured secret differs from the one kept in the store: mail hashes and queued mail made with the " +
        "stored one would no longer match or open. Configure the stored secret (meta table, key 'secret'), or leave " +
        "`secret` unset to keep using it from the store",
    );
  }
  await store.deleteStoredSecret();
  warn("the configured secret is the one the store kept; removed it from the store, which no longer holds it");
}

/** The service secret: the operator's own (kept out of the store), else the one the store keeps, made on first use. */
export async function resolveSecret(config: Config, store: Store, random: RandomSource, warn: (message: string) => void): Promise<string> {
  if (config.secret === undefined) return store.loadSecret(createToken(random, 32));
  await keepSecretOutOfStore(store, config.secret, warn);
  return config.secret;
}

function mailDirWarning(log: Logger): (message: string) => void {
  return (message) => log.warn({ reason: message }, "mail directory permissions tightened");
}

export async function createContext(config: Config, store: Store, options: ContextOptions): Promise<AppContext> {
  const random = options.random ?? cryptoRandom;
  const limiterBacking = options.limiterBacking ?? memoryBacking;
  const clock = options.clock ?? systemClock;
  const secret = await resolveSecret(config, store, random, (message) => options.log.warn(message));
  return {
    config,
    rules: compileRules(config),
    store,
    mailer: createMailTransport(config.mail, mailDirWarning(options.log)),
    limiters: createLimiters(config.register.throttleSeconds, limiterBacking),
    formLimiters: createFormLimiters(config.antibot.auto, limiterBacking),
    powKeys: derivePowKeys(secret),
    limiterBacking,
    clock,
    random,
    log: options.log,
    secret,
    sealer: new Sealer(secret),
    templates: new Templates(config),
    metrics: new Metrics(store, () => clock.now()),
    notifyOutbox: () => {},
    writeHealth: new WriteHealth(),
    targets: new ProvisionTargets(config.accounts.provision),
  };
}

/**
 * Swaps in a new, already validated config (configForReload's: restart-only keys keep their
 * running values) on the shared context, in place: every route and worker holds this object and
 * reads ctx.config when it uses a key, so live keys apply from the next use. What is derived from
 * live keys is rebuilt here: rules (tokens, lists, filters, reserved names), the throttle, the
 * mailer (when mail changed) and templates. Everything is built before anything is replaced, so
 * a failure leaves the old config fully in force.
 */
export function applyConfig(ctx: AppContext, next: Config): void {
  const rules = compileRules(next);
  const templates = new Templates(next);
  const mailChanged = JSON.stringify(next.mail) !== JSON.stringify(ctx.config.mail);
  const mailer = mailChanged ? createMailTransport(next.mail, mailDirWarning(ctx.log)) : ctx.mailer;
  const throttleChanged = next.register.throttleSeconds !== ctx.config.register.throttleSeconds;
  const limiters = throttleChanged
    ? { ...ctx.limiters, throttle: createThrottle(next.register.throttleSeconds, ctx.limiterBacking) }
    : ctx.limiters;

  // Counts under the old settings are dropped with them; used challenges are kept (same limiter).
  const formLimiters = JSON.stringify(next.antibot.auto) !== JSON.stringify(ctx.config.antibot.auto)
    ? { ...createFormLimiters(next.antibot.auto, ctx.limiterBacking), powUsed: ctx.formLimiters.powUsed }
    : ctx.formLimiters;

  const oldMailer = ctx.mailer;
  ctx.config = next;
  ctx.rules = rules;
  ctx.templates = templates;
  ctx.mailer = mailer;
  ctx.limiters = limiters;
  ctx.formLimiters = formLimiters;
  if (mailer !== oldMailer) oldMailer.close();
  ctx.targets.update(next.accounts.provision);
}
