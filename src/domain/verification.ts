import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { NewOutboxItem, Store } from "../store/store.ts";
import { eventItem } from "./outbox-items.ts";
import { approvalRequired, createApprovalTicket, noteAwaiting } from "./approval.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, RandomSource, TargetDirectory } from "./ports.ts";
import { awaitProvisioning, createJobs, openProvisionSecret, takenDownstreamError, type ProvisionResult } from "./provisioning.ts";
import { hashToken } from "./secrets.ts";

export interface VerifyDeps {
  config: Config;
  store: Store;
  clock: Clock;
  random: RandomSource;
  sealer: PayloadSealer;
  log: EventLog;
  notifyOutbox: OutboxNotifier;
  targets: TargetDirectory;
}

export interface VerificationView {
  username: string;
  /** Null once the account exists or waits for approval: the token was used before. */
  expiresAt: number | null;
  /** Verified and waiting for a moderator (DESIGN §11). */
  awaitingApproval: boolean;
}

export interface VerificationResult {
  username: string;
  alreadyActive: boolean;
  /** "shortly" when an account server has not made the account yet (DESIGN §9); "ready" otherwise. */
  provisioning: Exclude<ProvisionResult, "taken">;
  /** Verified, but the account waits for a moderator's approval (DESIGN §11). */
  awaitingApproval: boolean;
}

/** Reads what a token would complete, changing nothing: mail scanners fetch links before people do. */
export async function findVerification(deps: Pick<VerifyDeps, "store" | "clock">, token: string): Promise<VerificationView> {
  const found = await deps.store.findByTokenHash(hashToken(token), deps.clock.now());
  if (!found) throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  return { username: found.username, expiresAt: found.state === "pending" ? found.expiresAt : null, awaitingApproval: found.state === "awaiting" };
}

/**
 * Creates the account for a live pending registration, or, with register.approval "manual", makes
 * it wait for a moderator; a token completed before answers what it became.
 */
export async function completeVerification(deps: VerifyDeps, token: string): Promise<VerificationResult> {
  const now = deps.clock.now();
  if (approvalRequired(deps.config, "registration")) return awaitApproval(deps, token, now);
  const webhook = deps.config.events?.webhook;
  // The jobs come first: the account's events are held until every job is done (DESIGN §9).
  const result = await deps.store.activatePending(hashToken(token), now, (account, sealed): NewOutboxItem[] => [
    ...createJobs(deps, account.username, openProvisionSecret(deps, sealed), now),
    ...(webhook
      ? [
          eventItem(deps, {
            type: "user-registered",
            occurredAt: new Date(now).toISOString(),
            data: { id: account.id, username: account.username, via: "verification" },
          }, now),
        ]
      : []),
  ]);
  if (!result) throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  if (result.outcome === "already-active") return { username: result.username, alreadyActive: true, provisioning: "ready", awaitingApproval: false };
  if (result.outcome === "awaiting") return { username: result.username, alreadyActive: true, provisioning: "ready", awaitingApproval: true };
  deps.log.info({ event: "user-registered", username: result.account.username, userId: result.account.id }, "user-registered");
  if (webhook) deps.notifyOutbox();
  const provisioning = await awaitProvisioning(deps, result.account.id, deps.notifyOutbox);
  if (provisioning === "taken") throw takenDownstreamError();
  return { username: result.account.username, alreadyActive: false, provisioning, awaitingApproval: false };
}

/** The verified registration waits for a moderator, who is mailed its links in the same transaction. */
async function awaitApproval(deps: VerifyDeps, token: string, now: number): Promise<VerificationResult> {
  const ticket = createApprovalTicket(deps, now);
  const result = await deps.store.awaitApproval(hashToken(token), now, ticket, ticket.mails);
  if (!result) throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  if (result.outcome === "already-active") return { username: result.username, alreadyActive: true, provisioning: "ready", awaitingApproval: false };
  if (result.fresh) noteAwaiting(deps, result.record, "registration");
  return { username: result.record.username, alreadyActive: !result.fresh, provisioning: "ready", awaitingApproval: true };
}
