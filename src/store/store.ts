/**
 * The one storage interface. Both backends implement it; the domain never sees SQL.
 * Times are milliseconds since the epoch, passed in by the caller (the domain's clock).
 */

export interface NewPending {
  username: string;
  /** The username's UTS #39 confusable skeleton (usernameSkeleton), for look-alike lookups. */
  skeleton: string;
  passwordHash: string;
  mailHash: string;
  tokenHash: string;
  ip: string;
  createdAt: number;
  expiresAt: number;
  /**
   * Sealed JSON of what a provisioning target needs in the clear (the password, the address), kept
   * only while the registration is pending: activatePending hands it to the jobs and erases it.
   */
  sealedSecret?: string | null;
  /** What the person wrote for the moderators, kept while the registration waits (DESIGN §11). */
  reason?: string | null;
  /** The offered language the registration was made in, for the mail about it. */
  lang?: string | null;
}

/** "provision": a job that creates or removes an account on one target of accounts.provision (DESIGN §9). */
export type OutboxKind = "mail" | "event" | "provision";

export interface NewOutboxItem {
  kind: OutboxKind;
  /** Sealed (encrypted) JSON; see Sealer. */
  payload: string;
  createdAt: number;
  /** The target a "provision" job is for (its name in accounts.provision). */
  target?: string;
}

export interface OutboxItem {
  id: number;
  kind: OutboxKind;
  payload: string;
  attempts: number;
  userId: number | null;
  target: string | null;
}

/** The latest create job of one account on one target. */
export interface ProvisionJobState {
  userId: number;
  target: string;
  state: "queued" | "sent" | "failed";
  lastError: string | null;
}

/** The last_error a create job is failed with when its target says the name belongs to someone else. */
export const PROVISION_TAKEN = "taken";

export type InsertPendingResult =
  | { ok: true; id: number }
  | { ok: false; conflict: "username" | "mail" };

export interface PendingSummary {
  id: number;
  username: string;
  /** "pending": waiting for its verification; "awaiting": verified, waiting for a moderator (DESIGN §11). */
  state: "pending" | "awaiting";
  /** What the person wrote for the moderators; null when nothing. */
  reason: string | null;
  ip: string;
  createdAt: number;
  expiresAt: number;
  mailStatus: "queued" | "sent" | "failed" | "none";
  /** The language the registration was made in; null: the default. */
  lang: string | null;
}

/** What `requeuePendingMail` did: an admin's "send that verification mail again". */
export type RequeueMailResult =
  | { ok: true; previous: "queued" | "failed" }
  | { ok: false; reason: "no-pending" | "no-mail" | "sent" };

/** A live pending registration as a resend sees it, to decide whether the address given is its own. */
export interface ResendCandidate {
  id: number;
  username: string;
  mailHash: string | null;
  expiresAt: number;
  /** New links it has had already. */
  resends: number;
  /** The language it was made in; null: the default. */
  lang: string | null;
}

/** What `resendPending` did. */
export type ResendResult =
  | { ok: true; resends: number }
  | { ok: false; reason: "no-pending" | "mismatch" | "limit" };

export interface AccountSummary {
  id: number;
  username: string;
  createdAt: number;
  hasMail: boolean;
  /** Who issued the invitation this account was made with; null for verified registrations. */
  invitedBy: string | null;
}

export interface LoginRecord {
  id: number;
  username: string;
  passwordHash: string;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  secretHash: string;
  createdAt: number;
}

export type IssuerKind = "user" | "key" | "admin";

export interface NewInvite {
  handle: string;
  tokenHash: string;
  issuerKind: IssuerKind;
  issuerId: string;
  issuerName: string;
  username: string | null;
  uses: number;
  createdAt: number;
  expiresAt: number;
}

export interface InviteRecord {
  id: number;
  handle: string;
  issuerKind: IssuerKind;
  issuerId: string;
  issuerName: string;
  username: string | null;
  usesTotal: number;
  usesLeft: number;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

/** What insertInviteWithinQuota did: the invite, or why not (the quota's counted invites' times, newest first). */
export type QuotaInsertResult =
  | { ok: true; invite: InviteRecord }
  | { ok: false; reason: "quota"; counted: number[] }
  | { ok: false; reason: "no-account" };

/** An account with who invited it (DESIGN §11). */
export interface AccountLineage extends AccountSummary {
  inviterKind: IssuerKind | null;
  /** The inviting account's id while that account exists; null for other inviters and once it is deleted. */
  inviterId: number | null;
  /** An account invited it, and that account has been deleted since (invitedBy keeps its name). */
  inviterDeleted: boolean;
}

export interface NewAccount {
  username: string;
  /** The username's UTS #39 confusable skeleton (usernameSkeleton). */
  skeleton: string;
  passwordHash: string;
  /** The language of the page the invite was accepted on, for mail about the account. */
  lang?: string | null;
}

/** What a registration waiting for a moderator keeps besides its name, password hash and mail hash. */
export interface NewAwaiting {
  expiresAt: number;
  approvalTokenHash: string;
  reason: string | null;
  /** Sealed JSON the account servers and the outcome mail need (the password, the address); erased when decided. */
  sealedSecret: string | null;
}

/** A registration waiting for a moderator (DESIGN §11). */
export interface AwaitingRecord {
  id: number;
  username: string;
  reason: string | null;
  createdAt: number;
  expiresAt: number;
  invitedBy: string | null;
  /** The language the registration was made in (its mails are written in it); null: the default. */
  lang: string | null;
}

/** How a moderator names a waiting registration: by name (the CLI) or by the token of a mailed link. */
export type AwaitingRef = { username: string } | { approvalTokenHash: string };

export type AcceptInviteResult =
  | { ok: true; account: AccountSummary }
  | { ok: false; reason: "gone" | "username-taken" };

export type AcceptInviteAwaitingResult =
  | { ok: true; awaiting: AwaitingRecord }
  | { ok: false; reason: "gone" | "username-taken" };

export interface SessionRecord {
  userId: number;
  username: string;
  expiresAt: number;
}

export type TokenLookup =
  | { state: "pending"; username: string; expiresAt: number }
  | { state: "awaiting"; username: string }
  | { state: "active"; username: string };

export type ActivateResult =
  | { outcome: "created"; account: AccountSummary }
  | { outcome: "already-active"; username: string }
  | { outcome: "awaiting"; username: string };

export type AwaitApprovalResult =
  | { outcome: "awaiting"; record: AwaitingRecord; fresh: boolean }
  | { outcome: "already-active"; username: string };



export type NameHolderKind = "pending" | "awaiting" | "account";

export interface Store {
  readonly kind: "sqlite" | "postgres";
  migrate(): Promise<void>;
  /** Stores `candidate` as the service secret unless one is stored already; returns the stored one. */
  loadSecret(candidate: string): Promise<string>;
  /** The secret kept in the store, if any (an operator's own secret never goes there). */
  findStoredSecret(): Promise<string | null>;
  /** Removes the stored secret and, like purgeErased, leaves no copy of it in the store's files. */
  deleteStoredSecret(): Promise<void>;
  ping(): Promise<void>;
  /** A small real write (a heartbeat row in meta) that fails when the store cannot be written, e.g. a full disk. */
  probeWrite(now: number): Promise<void>;
  /**
   * Makes what was erased since the last call (sent outbox payloads, voided pending rows)
   * unrecoverable from the store's files: SQLite's WAL keeps old pages until a checkpoint
   * truncates it. Cheap when nothing was erased; call it after a batch, not per row.
   */
  purgeErased(): Promise<void>;
  close(): Promise<void>;

  /** Who holds a username right now: a live pending registration, one awaiting approval, an account, or nobody. */
  findNameHolder(username: string, now: number): Promise<NameHolderKind | null>;
  /** Who holds a name with this confusable skeleton right now; an account first, then one awaiting approval, then a pending one. */
  findSkeletonHolder(skeleton: string, now: number): Promise<NameHolderKind | null>;
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
    events: (account: AccountSummary, sealedSecret: string | null) => NewOutboxItem[],
  ): Promise<ActivateResult | null>;
  /** Registrations waiting for their verification or for a moderator, as of `now`, oldest first. */
  listPending(now: number): Promise<PendingSummary[]>;
  listAccounts(): Promise<AccountSummary[]>;
  /** The account with this id, or null. */
  findAccountById(id: number): Promise<AccountSummary | null>;
  /**
   * Accounts with who invited them: every account, by name; or, oldest first, only `root` and the
   * accounts it invited, and those they invited, all the way down (empty when there is no `root`).
   */
  listLineage(root?: string): Promise<AccountLineage[]>;
  /** Deletes an account and with it the claim on its mail hash. */
  deleteAccount(username: string): Promise<boolean>;
  deleteExpiredPending(now: number): Promise<number>;
  /** Forgets the token hashes of accounts verified before `before` ("already active" is only shown for a while). */
  forgetTokensVerifiedBefore(before: number): Promise<number>;

  findLogin(username: string): Promise<LoginRecord | null>;

  insertApiKey(key: ApiKeyRecord): Promise<void>;
  findApiKey(id: string): Promise<ApiKeyRecord | null>;
  listApiKeys(): Promise<ApiKeyRecord[]>;
  deleteApiKey(id: string): Promise<boolean>;

  insertInvite(invite: NewInvite): Promise<InviteRecord>;
  /**
   * Inserts an invite an account issues, in one transaction with the count it is checked against:
   * only when fewer than `max` invites of the same issuer were created after `since`. Concurrent
   * calls for one account queue, so none slips past the count. "no-account" when the account is gone.
   */
  insertInviteWithinQuota(invite: NewInvite, quota: { userId: number; since: number; max: number }): Promise<QuotaInsertResult>;
  findInviteByTokenHash(tokenHash: string): Promise<InviteRecord | null>;
  findInviteByHandle(handle: string): Promise<InviteRecord | null>;
  listInvites(): Promise<InviteRecord[]>;
  revokeInvite(id: number, now: number): Promise<boolean>;
  /** Revokes an account's invites that could still be used (issuer kind "user", id `issuerId`); how many. */
  revokeLiveInvitesOf(issuerId: string, now: number): Promise<number>;
  /**
   * Uses one of a live invite's uses and creates the account in one transaction: of concurrent
   * accepts of a one-use invite exactly one wins, and a taken name leaves the invite untouched.
   */
  acceptInvite(
    tokenHash: string,
    now: number,
    account: NewAccount,
    events: (account: AccountSummary) => NewOutboxItem[],
  ): Promise<AcceptInviteResult>;
  /** As acceptInvite, but the invited person waits for a moderator (invites.requireApproval, DESIGN §11): no account yet. */
  acceptInviteAwaiting(
    tokenHash: string,
    now: number,
    account: NewAccount & { awaiting: NewAwaiting },
    items: (record: AwaitingRecord) => NewOutboxItem[],
  ): Promise<AcceptInviteAwaitingResult>;

  insertSession(tokenHash: string, userId: number, createdAt: number, expiresAt: number): Promise<void>;
  findSession(tokenHash: string, now: number): Promise<SessionRecord | null>;
  extendSession(tokenHash: string, expiresAt: number): Promise<void>;
  deleteSession(tokenHash: string): Promise<void>;
  deleteExpiredSessions(now: number): Promise<number>;

  /**
   * Leases up to `limit` due outbox items until `leaseUntil`; a crashed sender's leases simply run out.
   * Events go out in order per account: an event is not handed out while an earlier event of the
   * same user is still queued (leased or waiting for a retry); one that failed for good no longer holds the next.
   */
  claimOutbox(now: number, leaseUntil: number, limit: number): Promise<OutboxItem[]>;
  markOutboxSent(id: number, now: number): Promise<void>;
  markOutboxRetry(id: number, nextAttemptAt: number, error: string): Promise<void>;
  markOutboxFailed(id: number, error: string, now: number): Promise<void>;
  outboxDepth(): Promise<number>;
  /**
   * Queues the latest verification mail of a live pending registration again: state queued,
   * attempts reset, due at `now`. Only a mail that still holds its payload (queued or failed) can be;
   * a sent mail's payload is erased. A lease still running is kept, so a send in flight is not doubled.
   */
  requeuePendingMail(username: string, now: number): Promise<RequeueMailResult>;
  /**
   * Gives a live pending registration a new verification link (DESIGN §11), in one transaction:
   * `plan` sees the row and answers the new token hash and mail, or null when the address given is
   * not the one registered ("mismatch"); the old token stops working, a still queued old mail is
   * dropped, and the count of resends goes up, never past `limit` however many ask at once.
   */
  resendPending(
    username: string,
    now: number,
    limit: number,
    plan: (row: ResendCandidate) => { tokenHash: string; outbox: NewOutboxItem[] } | null,
  ): Promise<ResendResult>;

  // --- manual approval (DESIGN §11): verified registrations and accepted invites waiting as 'awaiting' ---

  /**
   * Turns a live pending registration into one awaiting approval (until `approval.expiresAt`) in
   * one statement, and queues `items(record)` (the moderators' mail) in the same transaction; a
   * token completed before answers what it became. Null for an unknown or expired token.
   */
  awaitApproval(
    tokenHash: string,
    now: number,
    approval: Omit<NewAwaiting, "reason" | "sealedSecret">,
    items: (record: AwaitingRecord) => NewOutboxItem[],
  ): Promise<AwaitApprovalResult | null>;
  /** A live registration awaiting approval, by the hash of its moderator token. */
  findAwaiting(ref: AwaitingRef, now: number): Promise<AwaitingRecord | null>;
  /**
   * Makes a live waiting registration the account (one statement: two moderators cannot both decide),
   * erasing its reason, token and sealed secret, and queues `items(account, sealedSecret)` with it.
   */
  approveAwaiting(
    ref: AwaitingRef,
    now: number,
    items: (account: AccountSummary, sealedSecret: string | null, waited: AwaitingRecord) => NewOutboxItem[],
  ): Promise<AccountSummary | null>;
  /** Deletes a live waiting registration (its name and mail are free again) and queues `items(record, sealedSecret)`. */
  rejectAwaiting(
    ref: AwaitingRef,
    now: number,
    items: (record: AwaitingRecord, sealedSecret: string | null) => NewOutboxItem[],
  ): Promise<AwaitingRecord | null>;
  /** Deletes every registration whose wait for approval ran out by `now`, queueing `items(record, sealedSecret)` for each; how many. */
  expireAwaiting(now: number, items: (record: AwaitingRecord, sealedSecret: string | null) => NewOutboxItem[]): Promise<number>;
  /** How many registrations wait for a moderator now. */
  countAwaiting(now: number): Promise<number>;

  // --- provisioning (DESIGN §9): jobs are outbox items of kind "provision" with a target ---
  //
  // An account's events are held (claimOutbox) while any of its provision jobs is not sent, so
  // user-registered goes out once the account exists on every target.

  /** The latest create job per account and target; of one account, or of all accounts. */
  listProvisionJobs(userId?: number): Promise<ProvisionJobState[]>;
  /**
   * Deletes an active account (its name and mail are free again) and, in the same transaction,
   * voids its unsent provision jobs (payloads erased, state failed) and queued events, and queues
   * `jobs(account)` (remove jobs, with no account id). With `restoreInvite` an account made with an
   * invite gives the invite its use back (the account never came to be). Null when there is no such account.
   */
  removeAccount(
    username: string,
    now: number,
    jobs: (account: AccountSummary) => NewOutboxItem[],
    options?: { restoreInvite?: boolean },
  ): Promise<AccountSummary | null>;
  /** Makes an account's queued and failed provision jobs due now, attempts reset; null when there is no such account. */
  retryProvision(username: string, now: number): Promise<number | null>;
  /** Provision jobs waiting (queued), and when the oldest of them was queued. */
  provisionQueue(): Promise<{ depth: number; oldestCreatedAt: number | null }>;
}
