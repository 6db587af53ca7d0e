import { RateLimiterMemory, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";

/**
 * A counter of attempts per key. Backed by rate-limiter-flexible; the backing limiter is chosen
 * where the context is built (memory now, a shared store when several processes must agree).
 */
export interface Limiter {
  /** Takes one point. Resolves to null when allowed, or the milliseconds until the key may try again. */
  take(key: string): Promise<number | null>;
  /** Returns a point taken by a request that was refused later for another reason. */
  giveBack(key: string): Promise<void>;
  /** Milliseconds until the key may try again, or null; takes nothing. */
  blockedFor(key: string): Promise<number | null>;
  /** Drops everything counted for the key. */
  forget(key: string): Promise<void>;
}

/** What a limiter needs of its backing: one of rate-limiter-flexible's limiters, or the cluster's. */
export type LimiterStore = Pick<RateLimiterAbstract, "points" | "consume" | "reward" | "get" | "delete">;

export class FlexibleLimiter implements Limiter {
  constructor(private readonly backing: LimiterStore) {}

  async take(key: string): Promise<number | null> {
    try {
      await this.backing.consume(key, 1);
      return null;
    } catch (err) {
      if (err instanceof RateLimiterRes) return Math.max(err.msBeforeNext, 1);
      throw err;
    }
  }

  async giveBack(key: string): Promise<void> {
    await this.backing.reward(key, 1);
  }

  async blockedFor(key: string): Promise<number | null> {
    const res = await this.backing.get(key);
    if (res && res.consumedPoints >= this.backing.points) return Math.max(res.msBeforeNext, 1);
    return null;
  }

  async forget(key: string): Promise<void> {
    await this.backing.delete(key);
  }
}

/** Bad auth_token attempts allowed per peer address and window before it is answered 429. */
export const AUTH_FAILURE_POINTS = 10;
export const AUTH_FAILURE_WINDOW_SECONDS = 60;

/**
 * Failed logins allowed per (client address, name) in a window: guessing one account's password
 * from one place. Nothing is counted per name alone, so nobody elsewhere can lock an account.
 */
export const LOGIN_FAILURE_POINTS = 10;
/**
 * Failed logins allowed per client address, whatever the names: password spraying. High enough
 * that the people behind one shared address (a NAT) do not reach it by mistyping.
 */
export const LOGIN_ADDRESS_FAILURE_POINTS = 50;
export const LOGIN_FAILURE_WINDOW_SECONDS = 600;

/**
 * Verification mails asked for again per mail address (its keyed hash), whatever the registration
 * and whether or not one exists: nobody can mail-bomb an address through the resend form.
 */
export const RESEND_ADDRESS_POINTS = 5;
export const RESEND_ADDRESS_WINDOW_SECONDS = 3600;

/** Every key that is an address is one made by addressKey() (IPv6 by network). */
export interface Limiters {
  /** One registration per end-user address per `throttleSeconds`; null when throttling is off. */
  throttle: Limiter | null;
  /** Bad auth_token attempts per peer address. */
  authFailures: Limiter;
  /** Failed logins per "ADDRESS|USERNAME". */
  loginPairFailures: Limiter;
  /** Failed logins per address. */
  loginAddressFailures: Limiter;
  /** Resend requests per mail address, keyed by the address's keyed hash. */
  resendAddresses: Limiter;
}

/** What a limiter counts in: one process's memory, the cluster primary's, or Redis. */
export type LimiterBacking = (options: { keyPrefix: string; points: number; duration: number }) => LimiterStore;

export const memoryBacking: LimiterBacking = (options) => new RateLimiterMemory(options);

export function createThrottle(throttleSeconds: number, backing: LimiterBacking): Limiter | null {
  // The window is part of the prefix: a shared backing keeps the first options it saw per prefix.
  return throttleSeconds > 0
    ? new FlexibleLimiter(backing({ keyPrefix: `gh:throttle:${throttleSeconds}`, points: 1, duration: throttleSeconds }))
    : null;
}

export function createLimiters(throttleSeconds: number, backing: LimiterBacking = memoryBacking): Limiters {
  return {
    throttle: createThrottle(throttleSeconds, backing),
    authFailures: new FlexibleLimiter(
      backing({ keyPrefix: "gh:auth", points: AUTH_FAILURE_POINTS, duration: AUTH_FAILURE_WINDOW_SECONDS }),
    ),
    loginPairFailures: new FlexibleLimiter(
      backing({ keyPrefix: "gh:login:pair", points: LOGIN_FAILURE_POINTS, duration: LOGIN_FAILURE_WINDOW_SECONDS }),
    ),
    loginAddressFailures: new FlexibleLimiter(
      backing({ keyPrefix: "gh:login:addr", points: LOGIN_ADDRESS_FAILURE_POINTS, duration: LOGIN_FAILURE_WINDOW_SECONDS }),
    ),
    resendAddresses: new FlexibleLimiter(
      backing({ keyPrefix: "gh:resend:mail", points: RESEND_ADDRESS_POINTS, duration: RESEND_ADDRESS_WINDOW_SECONDS }),
    ),
  };
}

/** How long a proof-of-work challenge may be solved and sent; a used one is remembered that long. */
export const POW_CHALLENGE_TTL_SECONDS = 600;

/** What antibot.proofOfWork "auto" counts, and where it remembers used challenges (DESIGN §11). */
export interface FormLimiters {
  /** Public form submissions per address (addressKey). */
  perAddress: Limiter;
  /** Public form submissions in all (one key). */
  perForm: Limiter;
  /** An address, or "*" for everyone, that tripped a limit: blocked while the proof of work is asked for. */
  powOn: Limiter;
  /** Challenge signatures already used: a second take is a replay. */
  powUsed: Limiter;
}

export interface FormLimitSettings {
  perAddress: number;
  perForm: number;
  windowSeconds: number;
  holdSeconds: number;
}

export function createFormLimiters(auto: FormLimitSettings, backing: LimiterBacking = memoryBacking): FormLimiters {
  const window = auto.windowSeconds;
  return {
    perAddress: new FlexibleLimiter(backing({ keyPrefix: `gh:form:addr:${auto.perAddress}:${window}`, points: auto.perAddress, duration: window })),
    perForm: new FlexibleLimiter(backing({ keyPrefix: `gh:form:all:${auto.perForm}:${window}`, points: auto.perForm, duration: window })),
    powOn: new FlexibleLimiter(backing({ keyPrefix: `gh:pow:on:${auto.holdSeconds}`, points: 1, duration: auto.holdSeconds })),
    powUsed: new FlexibleLimiter(backing({ keyPrefix: "gh:pow:used", points: 1, duration: POW_CHALLENGE_TTL_SECONDS })),
  };
}
