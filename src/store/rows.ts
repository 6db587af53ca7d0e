import type { AccountSummary, ApiKeyRecord, InviteRecord, IssuerKind, OutboxItem, PendingSummary, ProvisionJobState, TokenLookup } from "./store.ts";

/** A database row as either driver returns it; PostgreSQL BIGINTs arrive as strings, hence Number() everywhere. */
export type Row = Record<string, unknown>;

/** The columns every account mapping reads. */
export const ACCOUNT_COLUMNS = "id, username, created_at, mail_hash, invited_by";

export function toAccount(row: Row): AccountSummary {
  return {
    id: Number(row["id"]),
    username: String(row["username"]),
    createdAt: Number(row["created_at"]),
    hasMail: row["mail_hash"] != null,
    invitedBy: row["invited_by"] == null ? null : String(row["invited_by"]),
  };
}

export function toInvite(row: Row): InviteRecord {
  return {
    id: Number(row["id"]),
    handle: String(row["handle"]),
    issuerKind: row["issuer_kind"] as IssuerKind,
    issuerId: String(row["issuer_id"]),
    issuerName: String(row["issuer_name"]),
    username: row["username"] == null ? null : String(row["username"]),
    usesTotal: Number(row["uses_total"]),
    usesLeft: Number(row["uses_left"]),
    createdAt: Number(row["created_at"]),
    expiresAt: Number(row["expires_at"]),
    revokedAt: row["revoked_at"] == null ? null : Number(row["revoked_at"]),
  };
}

export function toApiKey(row: Row): ApiKeyRecord {
  return {
    id: String(row["id"]),
    name: String(row["name"]),
    secretHash: String(row["secret_hash"]),
    createdAt: Number(row["created_at"]),
  };
}

export function toPendingSummary(row: Row): PendingSummary {
  return {
    id: Number(row["id"]),
    username: String(row["username"]),
    ip: String(row["ip"] ?? ""),
    createdAt: Number(row["created_at"]),
    expiresAt: Number(row["expires_at"]),
    mailStatus: (row["mail_state"] as PendingSummary["mailStatus"] | null) ?? "none",
  };
}

export function toOutboxItem(row: Row): OutboxItem {
  return {
    id: Number(row["id"]),
    kind: row["kind"] as OutboxItem["kind"],
    payload: String(row["payload"]),
    attempts: Number(row["attempts"]),
    userId: row["user_id"] == null ? null : Number(row["user_id"]),
    target: row["target"] == null ? null : String(row["target"]),
  };
}

export function toProvisionJob(row: Row): ProvisionJobState {
  return {
    userId: Number(row["user_id"]),
    target: String(row["target"]),
    state: row["state"] as ProvisionJobState["state"],
    lastError: row["last_error"] == null ? null : String(row["last_error"]),
  };
}

/** What a verification token's row means at `now`: a live pending registration, an account, or nothing. */
export function toTokenLookup(row: Row | undefined, now: number): TokenLookup | null {
  if (!row) return null;
  if (row["state"] === "active") return { state: "active", username: String(row["username"]) };
  const expiresAt = Number(row["expires_at"]);
  if (expiresAt <= now) return null;
  return { state: "pending", username: String(row["username"]), expiresAt };
}

/** Who a users row with a live state is: an account or a pending registration; nobody without a row. */
export function toHolder(row: Row | undefined): "pending" | "account" | null {
  if (!row) return null;
  return row["state"] === "active" ? "account" : "pending";
}
