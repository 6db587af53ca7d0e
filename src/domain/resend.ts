import { timingSafeEqual } from "node:crypto";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { RequeueMailResult, ResendResult, Store } from "../store/store.ts";
import type { Limiter } from "./limiter.ts";
import { parseMail, type CanonicalMail } from "./mail-address.ts";
import { mailItem } from "./outbox-items.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, RandomSource } from "./ports.ts";
import { verifyLink } from "./registration.ts";
import { createToken, hashMail, hashToken } from "./secrets.ts";
import { nameForLookup } from "./users.ts";

// Resending the verification mail (DESIGN §11). The store keeps the address only as a keyed hash
// once the first mail went out, so whoever asks gives the address again; it is checked against the
// hash and the new link goes to it. The new link replaces the old: the old token stops working.

export interface ResendDeps {
  config: Pick<Config, "publicUrl" | "register">;
  store: Pick<Store, "resendPending" | "requeuePendingMail">;
  clock: Clock;
  random: RandomSource;
  /** Keys the mail hash. */
  secret: string;
  sealer: PayloadSealer;
}

export interface ResendFormDeps extends ResendDeps {
  limiters: { resendAddresses: Limiter };
  notifyOutbox: OutboxNotifier;
  log: EventLog;
}

/** What a resend did; the form shows the same page for every one of them (no enumeration). */
export type ResendOutcome = "sent" | "no-pending" | "mismatch" | "limit" | "mail-off";

// Long enough for any real name; nodeprep's 1023-byte bound is checked where names are made.
const MAX_NAME_LENGTH = 1100;

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** A new token and mail for the registration `username` if `mail` is its address; the limit holds in the store. */
async function sendNewLink(deps: ResendDeps, username: string, mail: CanonicalMail, lang?: string): Promise<ResendResult> {
  const now = deps.clock.now();
  const mailHash = hashMail(deps.secret, mail);
  const token = createToken(deps.random);
  return deps.store.resendPending(username, now, deps.config.register.resendLimit, (row) => {
    if (row.mailHash === null || !sameHash(row.mailHash, mailHash)) return null;
    const item = mailItem(deps, {
      template: "verify",
      to: mail,
      model: {
        username: row.username,
        link: verifyLink(deps.config, token),
        expiresAt: row.expiresAt,
      },
      // The form's page language, else (the CLI) the registration's own.
      ...(lang ?? row.lang ? { lang: lang ?? row.lang! } : {}),
    }, now);
    return { tokenHash: hashToken(token), outbox: [item] };
  });
}

/**
 * The verify form's "send the mail again", by name and address; the mail is written in `lang`, the
 * language of the page it was asked from. The caller shows one answer
 * whatever the outcome, and the work is the same up to the store's one transaction either way;
 * only the per-address rate limit, which counts every request for the address whether or not a
 * registration has it, is said out loud (429).
 */
export async function requestResend(deps: ResendFormDeps, input: { username: string; mail: string; lang?: string }): Promise<ResendOutcome> {
  const mail = parseMail(input.mail);
  if (!mail) throw new AppError("MALFORMED_REQUEST", "this is not a mail address", { detail: "mail" });
  if (input.username.trim() === "" || input.username.length > MAX_NAME_LENGTH) {
    throw new AppError("MALFORMED_REQUEST", "enter the username you registered", { detail: "username" });
  }
  const wait = await deps.limiters.resendAddresses.take(hashMail(deps.secret, mail));
  if (wait !== null) {
    throw new AppError("TOO_MANY_ATTEMPTS", "too many mails were asked for this address; try again later", { retryAfter: Math.ceil(wait / 1000), detail: "resend" });
  }
  if (!deps.config.register.sendMail) return "mail-off";
  const result = await sendNewLink(deps, nameForLookup(input.username), mail, input.lang);
  const outcome: ResendOutcome = result.ok ? "sent" : result.reason;
  if (result.ok) deps.notifyOutbox();
  // The address is never logged; the name only when the address matched it (it was the person's own).
  deps.log.info({ event: "verification-resend", outcome, ...(result.ok || result.reason === "limit" ? { username: nameForLookup(input.username) } : {}) }, "verification mail resend");
  return outcome;
}

export type AdminResendResult =
  | { kind: "requeued"; username: string; result: RequeueMailResult }
  | { kind: "new-link"; username: string; result: ResendResult };

/**
 * `pending resend NAME [--mail ADDRESS]`. Without an address, the mail still waiting in the outbox
 * (queued or failed: its sealed payload still holds the address) is queued again, due now. With
 * one, checked against the stored hash, a new link goes out and the old one stops working, within
 * register.resendLimit; an admin is not held to the per-address rate limit.
 */
export async function adminResend(deps: ResendDeps, name: string, address?: string): Promise<AdminResendResult> {
  const username = nameForLookup(name);
  if (address === undefined) return { kind: "requeued", username, result: await deps.store.requeuePendingMail(username, deps.clock.now()) };
  const mail = parseMail(address);
  if (!mail) throw new AppError("MALFORMED_REQUEST", "--mail is not a mail address");
  return { kind: "new-link", username, result: await sendNewLink(deps, username, mail) };
}
