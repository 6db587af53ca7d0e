import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { AccountSummary, AwaitingRecord, AwaitingRef, NewOutboxItem, Store } from "../store/store.ts";
import { eventItem, mailItem } from "./outbox-items.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, RandomSource, TargetDirectory } from "./ports.ts";
import { createJobs, openProvisionSecret } from "./provisioning.ts";
import { createToken, hashToken } from "./secrets.ts";
import { nameForLookup } from "./users.ts";

// Manual approval (DESIGN §11): with register.approval "manual" (or invites.requireApproval) a
// verified registration or an accepted invite waits for a moderator. Moderators are mailed signed
// links (a random token, stored only as its hash, dead once decided or expired) or use the CLI; the
// person is mailed the outcome; only an approved registration becomes the account and is provisioned.

/** The longest reason a person (or a moderator) may give, in characters. */
export const MAX_REASON_LENGTH = 500;

// C0 and C1 controls (newlines and tabs included: a reason is shown on one line) and the bidi
// overrides that could make a moderator read the text in another order than it is stored.
const UNSHOWABLE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]+/g;

/**
 * The reason as it is stored and shown: control characters replaced by a space, trimmed; null
 * when nothing is left. Longer than MAX_REASON_LENGTH is refused (400), not cut.
 */
export function cleanReason(text: string | undefined): string | null {
  if (text === undefined) return null;
  const cleaned = text.replace(UNSHOWABLE, " ").replace(/ {2,}/g, " ").trim();
  if ([...cleaned].length > MAX_REASON_LENGTH) throw new AppError("MALFORMED_REQUEST", `reason must be at most ${MAX_REASON_LENGTH} characters`);
  return cleaned === "" ? null : cleaned;
}

export type ApprovalPath = "registration" | "invite";

/** Whether a registration (after verification) or an accepted invite waits for a moderator now. */
export function approvalRequired(config: Pick<Config, "register" | "invites">, path: ApprovalPath): boolean {
  return path === "registration" ? config.register.approval === "manual" : config.invites.requireApproval;
}

export function approvalLinks(config: Pick<Config, "publicUrl" | "register">, token: string): { approve: string; reject: string } {
  const base = `${config.publicUrl}${config.register.basePath}approval/${encodeURIComponent(token)}`;
  return { approve: `${base}/approve`, reject: `${base}/reject` };
}

export interface ApprovalDeps {
  config: Config;
  store: Store;
  clock: Clock;
  random: RandomSource;
  sealer: PayloadSealer;
  targets: TargetDirectory;
  log: EventLog;
  notifyOutbox: OutboxNotifier;
}

/** What a registration about to wait for approval stores: when the wait ends and the moderator token's hash. */
export interface ApprovalTicket {
  expiresAt: number;
  approvalTokenHash: string;
  /** The moderator mails for the record, queued in the same transaction as the wait begins. */
  mails(record: AwaitingRecord): NewOutboxItem[];
}

/** A fresh moderator token for one registration, with what to store and what to mail. */
export function createApprovalTicket(deps: Pick<ApprovalDeps, "config" | "random" | "sealer">, now: number): ApprovalTicket {
  const { config } = deps;
  const token = createToken(deps.random);
  const expiresAt = now + config.register.approvalTtlSeconds * 1000;
  const links = approvalLinks(config, token);
  return {
    expiresAt,
    approvalTokenHash: hashToken(token),
    mails: (record) =>
      config.register.moderators.map((to) =>
        mailItem(deps, {
          template: "approval-request",
          to,
          // Moderators read the default language (the first of `languages`).
          model: {
            username: record.username,
            reason: record.reason,
            invitedBy: record.invitedBy,
            approveLink: links.approve,
            rejectLink: links.reject,
            expiresAt,
          },
        }, now),
      ),
  };
}

/** Says in the log that a registration waits, and wakes the sender for the moderators' mail. */
export function noteAwaiting(deps: Pick<ApprovalDeps, "config" | "log" | "notifyOutbox">, record: AwaitingRecord, path: ApprovalPath): void {
  deps.log.info({ event: "approval-requested", username: record.username, via: path, moderators: deps.config.register.moderators.length }, "registration awaits approval");
  if (deps.config.register.moderators.length > 0) deps.notifyOutbox();
}

/** The person's mails are written in the language they registered in (DESIGN §10). */
function langOf(record: AwaitingRecord): { lang?: string } {
  return record.lang === null ? {} : { lang: record.lang };
}

/** A moderator link's token as the store knows it; an impossible one is simply unknown. */
function refOfToken(token: string): AwaitingRef {
  const trimmed = token.trim();
  // Real tokens are 43 characters; anything far longer is not worth hashing.
  if (trimmed.length === 0 || trimmed.length > 256) throw approvalNotFound();
  return { approvalTokenHash: hashToken(trimmed) };
}

function approvalNotFound(): AppError {
  return new AppError("APPROVAL_NOT_FOUND", "this approval link is unknown, has expired or was already used");
}

/** What a moderator link shows before anything is decided (mail scanners fetch links too). */
export async function findApproval(deps: Pick<ApprovalDeps, "store" | "clock">, token: string): Promise<AwaitingRecord> {
  const record = await deps.store.findAwaiting(refOfToken(token), deps.clock.now());
  if (!record) throw approvalNotFound();
  return record;
}

export type Decision = { decision: "approve" } | { decision: "reject"; reason?: string | undefined };

/** Who decides: a moderator's link (by its token) or an admin's command (by the name). */
export type Decider = { token: string } | { username: string };

export type DecisionResult = { decision: "approve"; account: AccountSummary } | { decision: "reject"; record: AwaitingRecord };

/**
 * Approves or rejects a live registration awaiting approval. Approval makes the account and queues,
 * in the same transaction, its provisioning jobs (DESIGN §9), the person's mail and the events
 * user-approved and user-registered (held by the sender until the account exists everywhere).
 * Rejection frees the name and the mail address and mails the person, with the reason if given.
 * Null when there is no such registration waiting (unknown, decided already, or expired).
 */
export async function decideApproval(deps: ApprovalDeps, by: Decider, decision: Decision): Promise<DecisionResult | null> {
  const ref: AwaitingRef = "token" in by ? refOfToken(by.token) : { username: nameForLookup(by.username) };
  const reason = decision.decision === "reject" ? cleanReason(decision.reason) : null;
  const now = deps.clock.now();
  const at = new Date(now).toISOString();
  const webhook = deps.config.events?.webhook;
  const decidedBy = "token" in by ? "link" : "admin";
  if (decision.decision === "approve") {
    const account = await deps.store.approveAwaiting(ref, now, (account, sealed, waited) => {
      const secret = openProvisionSecret(deps, sealed);
      const via = account.invitedBy === null ? "verification" : "invite";
      return [
        // The jobs come first: the account's events are held until every job is done (DESIGN §9).
        ...createJobs(deps, account.username, secret, now),
        ...(secret.mail !== undefined
          ? [mailItem(deps, { template: "approval-approved", to: secret.mail, ...langOf(waited), model: { username: account.username } }, now)]
          : []),
        ...(webhook
          ? [
              eventItem(deps, { type: "user-approved", occurredAt: at, data: { id: account.id, username: account.username, via, decidedBy } }, now),
              eventItem(deps, {
                type: "user-registered",
                occurredAt: at,
                data: { id: account.id, username: account.username, via, ...(account.invitedBy === null ? {} : { invitedBy: account.invitedBy }) },
              }, now),
            ]
          : []),
      ];
    });
    if (!account) return null;
    deps.log.info({ event: "user-approved", username: account.username, userId: account.id, decidedBy }, "user-approved");
    deps.log.info({ event: "user-registered", username: account.username, userId: account.id, via: "approval" }, "user-registered");
    deps.notifyOutbox();
    return { decision: "approve", account };
  }
  const record = await deps.store.rejectAwaiting(ref, now, (record, sealed) => {
    const secret = openProvisionSecret(deps, sealed);
    return [
      ...(secret.mail !== undefined
        ? [mailItem(deps, { template: "approval-rejected", to: secret.mail, ...langOf(record), model: { username: record.username, reason } }, now)]
        : []),
      ...(webhook
        ? [eventItem(deps, { type: "user-rejected", occurredAt: at, data: { username: record.username, reason, decidedBy } }, now)]
        : []),
    ];
  });
  if (!record) return null;
  deps.log.info({ event: "user-rejected", username: record.username, decidedBy, withReason: reason !== null }, "user-rejected");
  deps.notifyOutbox();
  return { decision: "reject", record };
}

/**
 * Ends the waits that ran out: the name and mail address are free again and the person is mailed
 * that nobody decided in time. Run by the sweeper; how many ended.
 */
export async function expireApprovals(deps: Pick<ApprovalDeps, "config" | "store" | "clock" | "sealer" | "notifyOutbox">): Promise<number> {
  const now = deps.clock.now();
  const expired = await deps.store.expireAwaiting(now, (record, sealed) => {
    const secret = openProvisionSecret(deps, sealed);
    return secret.mail === undefined ? [] : [mailItem(deps, { template: "approval-expired", to: secret.mail, ...langOf(record), model: { username: record.username } }, now)];
  });
  if (expired > 0) deps.notifyOutbox();
  return expired;
}
