/**
 * The one storage interface. Both backends implement it; the domain never sees SQL.
 * Times are milliseconds since the epoch, passed in by the caller (the domain's clock).
 */

export interface NewPending {
  username: string;
  passwordHash: string;
  mailHash: string;
  tokenHash: string;
  ip: string;
  createdAt: number;
  expiresAt: number;
}

export type OutboxKind = "mail" | "event";

export interface NewOutboxItem {
  kind: OutboxKind;
  /** Sealed (encrypted) JSON; see Sealer. */
  payload: string;
  createdAt: number;
}

export interface OutboxItem {
  id: number;
  kind: OutboxKind;
  payload: string;
  attempts: number;
  userId: number | null;
}

export type InsertPendingResult =
  | { ok: true; id: number }
  | { ok: false; conflict: "username" | "mail" };

export interface PendingSummary {
  id: number;
  username: string;
  ip: string;
  createdAt: number;
  expiresAt: number;
  mailStatus: "queued" | "sent" | "failed" | "none";
}

export interface AccountSummary {
  id: number;
  username: string;
  createdAt: number;
  hasMail: boolean;
}

export type TokenLookup =
  | { state: "pending"; username: string; expiresAt: number }
  | { state: "active"; username: string };

export type ActivateResult =
  | { outcome: "created"; account: AccountSummary }
  | { outcome: "already-active"; username: string };

export interface Store {
  readonly kind: "sqlite" | "postgres";
  migrate(): Promise<void>;
  /** Stores `candidate` as the service secret unless one is stored already; returns the stored one. */
  loadSecret(candidate: string): Promise<string>;
  ping(): Promise<void>;
  close(): Promise<void>;

  /** Who holds a username right now: a live pending registration, an account, or nobody. */
  findNameHolder(username: string, now: number): Promise<"pending" | "account" | null>;
  isMailHashHeld(mailHash: string, now: number): Promise<boolean>;
  /**
   * Inserts a pending registration and its outbox items in one transaction, first voiding expired
   * pending rows that hold the same name or mail hash. Uniqueness is the database's to enforce.
   */
  insertPending(pending: NewPending, outbox: NewOutboxItem[]): Promise<InsertPendingResult>;
  findByTokenHash(tokenHash: string, now: number): Promise<TokenLookup | null>;
  /**
   * Turns a live pending registration into an account in one statement, so two concurrent
   * completions cannot both win; the events for it are queued in the same transaction.
   */
  activatePending(
    tokenHash: string,
    now: number,
    events: (account: AccountSummary) => NewOutboxItem[],
  ): Promise<ActivateResult | null>;
  listPending(now: number): Promise<PendingSummary[]>;
  listAccounts(): Promise<AccountSummary[]>;
  /** Deletes an account and with it the claim on its mail hash. */
  deleteAccount(username: string): Promise<boolean>;
  deleteExpiredPending(now: number): Promise<number>;
  /** Forgets the token hashes of accounts verified before `before` ("already active" is only shown for a while). */
  forgetTokensVerifiedBefore(before: number): Promise<number>;

  /** Leases up to `limit` due outbox items until `leaseUntil`; a crashed sender's leases simply run out. */
  claimOutbox(now: number, leaseUntil: number, limit: number): Promise<OutboxItem[]>;
  markOutboxSent(id: number, now: number): Promise<void>;
  markOutboxRetry(id: number, nextAttemptAt: number, error: string): Promise<void>;
  markOutboxFailed(id: number, error: string, now: number): Promise<void>;
  outboxDepth(): Promise<number>;
}
