import type { Selectable } from "kysely";
import type { Tables } from "./schema.ts";
import type { AccountSummary, ApiKeyRecord, InviteRecord, OutboxItem, PendingSummary, ProvisionJobState, TokenLookup } from "./store.ts";

type Users = Selectable<Tables["users"]>;

/** The columns every account mapping reads. */
export const ACCOUNT_COLUMNS = ["id", "username", "created_at", "mail_hash", "invited_by"] as const;

export function toAccount(row: Pick<Users, (typeof ACCOUNT_COLUMNS)[number]>): AccountSummary {
  return {
    id: row.id,
    username: row.username,
    createdAt: row.created_at,
    hasMail: row.mail_hash != null,
    invitedBy: row.invited_by,
  };
}

export function toInvite(row: Selectable<Tables["invites"]>): InviteRecord {
  return {
    id: row.id,
    handle: row.handle,
    issuerKind: row.issuer_kind,
    issuerId: row.issuer_id,
    issuerName: row.issuer_name,
    username: row.username,
    usesTotal: row.uses_total,
    usesLeft: row.uses_left,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

export function toApiKey(row: Selectable<Tables["api_keys"]>): ApiKeyRecord {
  return { id: row.id, name: row.name, secretHash: row.secret_hash, createdAt: row.created_at };
}

export function toPendingSummary(
  row: Pick<Users, "id" | "username" | "ip" | "created_at" | "expires_at" | "lang"> & { mail_state: PendingSummary["mailStatus"] | null },
): PendingSummary {
  return {
    id: row.id,
    username: row.username,
    ip: row.ip ?? "",
    createdAt: row.created_at,
    expiresAt: row.expires_at!,
    mailStatus: row.mail_state ?? "none",
    lang: row.lang,
  };
}

export function toOutboxItem(
  row: Pick<Selectable<Tables["outbox"]>, "id" | "kind" | "payload" | "attempts" | "user_id" | "target">,
): OutboxItem {
  return { id: row.id, kind: row.kind, payload: row.payload!, attempts: row.attempts, userId: row.user_id, target: row.target };
}

export function toProvisionJob(
  row: Pick<Selectable<Tables["outbox"]>, "user_id" | "target" | "state" | "last_error">,
): ProvisionJobState {
  return { userId: row.user_id!, target: row.target!, state: row.state, lastError: row.last_error };
}

/** What a verification token's row means at `now`: a live pending registration, an account, or nothing. */
export function toTokenLookup(row: Pick<Users, "username" | "state" | "expires_at"> | undefined, now: number): TokenLookup | null {
  if (!row) return null;
  if (row.state === "active") return { state: "active", username: row.username };
  const expiresAt = row.expires_at!;
  if (expiresAt <= now) return null;
  return { state: "pending", username: row.username, expiresAt };
}

/** Who a users row with a live state is: an account or a pending registration; nobody without a row. */
export function toHolder(row: Pick<Users, "state"> | undefined): "pending" | "account" | null {
  if (!row) return null;
  return row.state === "active" ? "account" : "pending";
}
