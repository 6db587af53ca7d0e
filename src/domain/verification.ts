import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { NewOutboxItem, Store } from "../store/store.ts";
import { eventItem } from "./outbox-items.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, TargetDirectory } from "./ports.ts";
import { awaitProvisioning, createJobs, openProvisionSecret, takenDownstreamError, type ProvisionResult } from "./provisioning.ts";
import { hashToken } from "./secrets.ts";

export interface VerifyDeps {
  config: Config;
  store: Store;
  clock: Clock;
  sealer: PayloadSealer;
  log: EventLog;
  notifyOutbox: OutboxNotifier;
  targets: TargetDirectory;
}

export interface VerificationView {
  username: string;
  /** Null once the account exists: the token was used moments ago. */
  expiresAt: number | null;
}

export interface VerificationResult {
  username: string;
  alreadyActive: boolean;
  /** "shortly" when an account server has not made the account yet (DESIGN §9); "ready" otherwise. */
  provisioning: Exclude<ProvisionResult, "taken">;
}

/** Reads what a token would complete, changing nothing: mail scanners fetch links before people do. */
export async function findVerification(deps: Pick<VerifyDeps, "store" | "clock">, token: string): Promise<VerificationView> {
  const found = await deps.store.findByTokenHash(hashToken(token), deps.clock.now());
  if (!found) throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  return { username: found.username, expiresAt: found.state === "pending" ? found.expiresAt : null };
}

/** Creates the account for a live pending registration; a token completed moments ago answers "already active". */
export async function completeVerification(deps: VerifyDeps, token: string): Promise<VerificationResult> {
  const now = deps.clock.now();
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
  if (result.outcome === "already-active") return { username: result.username, alreadyActive: true, provisioning: "ready" };
  deps.log.info({ event: "user-registered", username: result.account.username, userId: result.account.id }, "user-registered");
  if (webhook) deps.notifyOutbox();
  const provisioning = await awaitProvisioning(deps, result.account.id, deps.notifyOutbox);
  if (provisioning === "taken") throw takenDownstreamError();
  return { username: result.account.username, alreadyActive: false, provisioning };
}
