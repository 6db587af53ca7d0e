import type { Generated } from "kysely";

/**
 * The tables as the queries see them. Times are milliseconds since the epoch (BIGINT on
 * PostgreSQL, parsed to numbers by the pool; INTEGER on SQLite). Nullable columns may be left
 * out of an insert; `Generated` ones are filled by the database.
 */
export interface Tables {
  meta: { key: string; value: string };
  /**
   * Pending registrations and accounts share one table so that a username or a mail hash is
   * unique across both by constraint, not by a check before the insert.
   */
  users: {
    id: Generated<number>;
    username: string;
    /** The username's UTS #39 confusable skeleton; null only on rows a bulk import left without one. */
    skeleton: string | null;
    password_hash: string;
    mail_hash: string | null;
    /** 'awaiting': verified (or invited) and waiting for a moderator's approval (DESIGN §11). */
    state: "pending" | "active" | "awaiting";
    token_hash: string | null;
    ip: string | null;
    created_at: number;
    expires_at: number | null;
    verified_at: number | null;
    invited_by: string | null;
    invite_id: number | null;
    /** Who made the invite this account was made with (DESIGN §11); null for a registration. */
    inviter_kind: "user" | "key" | "admin" | null;
    /** The inviting account's id when inviter_kind is "user"; it may name an account since deleted. */
    inviter_id: number | null;
    /** Sealed JSON a provisioning target needs in the clear; held only while pending, erased on activation. */
    sealed_secret: string | null;
    /** What the person wrote for the moderators (control characters stripped); kept only while awaiting approval. */
    reason: string | null;
    /** The moderator links' token, hashed; set only while awaiting approval. */
    approval_token_hash: string | null;
    /** The offered language the registration was made in (migration 008); null: the default. */
    lang: string | null;
    /** New verification links sent after the first (register.resendLimit). */
    resend_count: Generated<number>;
  };
  outbox: {
    id: Generated<number>;
    kind: "mail" | "event" | "provision";
    user_id: number | null;
    /** The accounts.provision target a "provision" job is for; null for other kinds. */
    target: string | null;
    payload: string | null;
    state: Generated<"queued" | "sent" | "failed">;
    attempts: Generated<number>;
    next_attempt_at: number;
    lease_until: number | null;
    last_error: string | null;
    created_at: number;
    done_at: number | null;
  };
  api_keys: { id: string; name: Generated<string>; secret_hash: string; created_at: number };
  invites: {
    id: Generated<number>;
    handle: string;
    token_hash: string;
    issuer_kind: "user" | "key" | "admin";
    issuer_id: string;
    issuer_name: string;
    username: string | null;
    uses_total: number;
    uses_left: number;
    created_at: number;
    expires_at: number;
    revoked_at: number | null;
  };
  sessions: { token_hash: string; user_id: number; created_at: number; expires_at: number };
  /** Which steps of src/store/migrations/ a database has had, by name. */
  gatehouse_migrations: { name: string; applied_at: number };
}
