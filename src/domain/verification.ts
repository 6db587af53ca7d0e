import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { NewOutboxItem, Store } from "../store/store.ts";
import { eventItem } from "./outbox-items.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer } from "./ports.ts";
import { hashToken } from "./secrets.ts";

export interface VerifyDeps {
  config: Config;
  store: Store;
  clock: Clock;
  sealer: PayloadSealer;
  log: EventLog;
  notifyOutbox: OutboxNotifier;
}

export interface VerificationView {
  username: string;
  /** Null once the account exists: the token was used moments ago. */
  expiresAt: number | null;
}

export interface VerificationResult {
  username: string;
  alreadyActive: boolean;
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
  const result = await deps.store.activatePending(hashToken(token), now, (account): NewOutboxItem[] =>
    webhook
      ? [
          eventItem(deps, {
            type: "user-registered",
            occurredAt: new Date(now).toISOString(),
            data: { id: account.id, username: account.username, via: "verification" },
          }, now),
        ]
      : [],
  );
  if (!result) throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  if (result.outcome === "already-active") return { username: result.username, alreadyActive: true };
  deps.log.info({ event: "user-registered", username: result.account.username, userId: result.account.id }, "user-registered");
  if (webhook) deps.notifyOutbox();
  return { username: result.account.username, alreadyActive: false };
}
