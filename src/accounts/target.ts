/**
 * The account servers a new account is provisioned to (DESIGN §9). Each target is a small client
 * that takes plain options: nothing here knows the store, the config file or HTTP routing.
 */

export type TargetType = "ejabberd" | "xmpp" | "ldap" | "http";

/**
 * What a target says about a name before a registration is accepted: "unknown" when the server did
 * not answer in time (DESIGN §9: 503), "unchecked" when it offers no way to ask (then only create
 * can tell, and the registration goes ahead).
 */
export type Availability = "free" | "taken" | "unknown" | "unchecked";

export interface NewAccount {
  username: string;
  /** Needed in the clear by every target but ldap (and http without includePassword). */
  password?: string;
  /** gatehouse's Argon2id hash in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$hash). */
  passwordHash: string;
  mail?: string;
}

export type CreateOutcome = { outcome: "made" } | { outcome: "taken" } | { outcome: "retry"; reason: string };
export type RemoveOutcome = { outcome: "made" } | { outcome: "retry"; reason: string };

export interface AccountTarget {
  readonly type: TargetType;
  /** For logs and `users list`; no secret in it. */
  readonly name: string;
  /** Whether create() needs NewAccount.password; when false the password need not be kept for it. */
  readonly needsPassword: boolean;
  /** Whether create() uses NewAccount.mail (includeMail); when false the address is not kept for it. */
  readonly needsMail: boolean;
  check(username: string): Promise<Availability>;
  /**
   * "taken" only when the name belongs to someone else: a create that is retried after its first
   * attempt made the account (and the answer was lost) is recognised as "made" wherever the server
   * lets the target tell (ejabberd check_password, an XMPP login, the LDAP entry's own hash).
   */
  create(account: NewAccount): Promise<CreateOutcome>;
  /** Removing a name the server does not have counts as done. */
  remove(username: string): Promise<RemoveOutcome>;
  close(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 3000;

const MAX_REASON_LENGTH = 300;

/**
 * A reason fit for logs and `users list`: every secret the caller knows of (passwords, tokens) is
 * cut out, mail addresses are masked, URL credentials dropped, and the text is kept short. A server's
 * error message may echo what it was sent, so nothing it says is logged unscrubbed.
 */
export function scrubReason(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const secret of secrets) {
    if (secret) out = out.split(secret).join("[redacted]");
  }
  out = out
    .replace(/\/\/[^\s/@:]+:[^\s/@]+@/g, "//[redacted]@")
    .replace(/[^\s<>"'@,;:()[\]]+@[^\s<>"'@,;:()[\]]+\.[a-z]{2,}/gi, "[address]")
    .replace(/\s+/g, " ")
    .trim();
  return out.length > MAX_REASON_LENGTH ? `${out.slice(0, MAX_REASON_LENGTH)}…` : out;
}

/**
 * A thrown error as a reason: the system error code when there is one (fetch hides ECONNREFUSED
 * in `cause`), else its message.
 */
export function describeError(err: unknown, secrets: readonly (string | undefined)[] = []): string {
  if (!(err instanceof Error)) return scrubReason(String(err), secrets);
  const cause = err.cause instanceof Error ? err.cause : undefined;
  const code = (cause as { code?: unknown } | undefined)?.code ?? (err as { code?: unknown }).code;
  const message = cause?.message ?? err.message;
  const text = typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message;
  return scrubReason(text || err.name, secrets);
}

/** Rejects with a TimeoutError once `ms` pass; the work itself is not cancelled. */
export async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`${what}: no answer within ${ms} ms`);
      err.name = "TimeoutError";
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
