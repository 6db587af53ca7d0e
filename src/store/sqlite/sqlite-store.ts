import { dirname } from "node:path";
import Database from "better-sqlite3";
import { prepareSqliteFiles } from "../../file-modes.ts";
import type {
  AcceptInviteResult,
  AccountSummary,
  ApiKeyRecord,
  InviteRecord,
  LoginRecord,
  NewAccount,
  NewInvite,
  SessionRecord,
  ActivateResult,
  InsertPendingResult,
  NewOutboxItem,
  NewPending,
  OutboxItem,
  PendingSummary,
  ProvisionJobState,
  RequeueMailResult,
  Store,
  TokenLookup,
} from "../store.ts";
import { ACCOUNT_COLUMNS, toAccount, toApiKey, toInvite, toOutboxItem, toHolder, toPendingSummary, toProvisionJob, toTokenLookup, type Row } from "../rows.ts";
import { SQLITE_MIGRATIONS } from "./migrations.ts";


/** Which unique column a constraint error names, so a lost race maps to the right refusal. */
function uniqueViolation(err: unknown): string | null {
  const e = err as { code?: string; message?: string };
  if (e.code !== "SQLITE_CONSTRAINT_UNIQUE" && e.code !== "SQLITE_CONSTRAINT_PRIMARYKEY") return null;
  const match = /UNIQUE constraint failed: \w+\.(\w+)/.exec(e.message ?? "");
  return match?.[1] ?? "unknown";
}

export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  readonly #db: Database.Database;
  /** Files or the directory found open to other users and tightened on open, for the caller to log. */
  readonly fileNotices: string[];
  /** Set when a payload was erased and the WAL may still hold its old pages. */
  #erased = false;

  constructor(file: string) {
    this.fileNotices = file === ":memory:" ? [] : prepareSqliteFiles(file, dirname(file));
    this.#db = new Database(file);
    this.#db.pragma("journal_mode = WAL");
    // In WAL mode NORMAL keeps every committed transaction across a crash of the process (a
    // registration answered 200 survives SIGKILL; test/durability.test.ts), and only a power cut
    // can lose the last commits. FULL would fsync on the event loop at every registration.
    this.#db.pragma("synchronous = NORMAL");
    this.#db.pragma("busy_timeout = 5000");
    // Deleted rows (sent mail payloads, voided registrations) are overwritten, not left in free pages.
    this.#db.pragma("secure_delete = ON");
    this.#db.pragma("foreign_keys = ON");
  }

  /** Statements are compiled once per store and reused: compiling showed up on every request in profiles. */
  readonly #statements = new Map<string, Database.Statement>();

  #prepare(sql: string): Database.Statement {
    let statement = this.#statements.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  static open(url: string): SqliteStore {
    return new SqliteStore(url.replace(/^sqlite:/, ""));
  }

  async migrate(): Promise<void> {
    const db = this.#db;
    const apply = db.transaction(() => {
      const version = Number(db.pragma("user_version", { simple: true }));
      for (let i = version; i < SQLITE_MIGRATIONS.length; i++) {
        const step = SQLITE_MIGRATIONS[i]!;
        if (typeof step === "string") db.exec(step);
        else step(db);
        db.pragma(`user_version = ${i + 1}`);
      }
      // Checked before commit, since enforcement is off while tables are rebuilt.
      if ((db.pragma("foreign_key_check") as unknown[]).length > 0) throw new Error("migration left dangling foreign keys");
    });
    // Rebuilding a table drops the old one; with enforcement on, that would cascade to its sessions.
    db.pragma("foreign_keys = OFF");
    try {
      apply.immediate();
    } finally {
      db.pragma("foreign_keys = ON");
    }
  }

  async loadSecret(candidate: string): Promise<string> {
    this.#prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret', ?)").run(candidate);
    const row = this.#prepare("SELECT value FROM meta WHERE key = 'secret'").get() as Row;
    return String(row["value"]);
  }

  async findStoredSecret(): Promise<string | null> {
    const row = this.#prepare("SELECT value FROM meta WHERE key = 'secret'").get() as Row | undefined;
    return row ? String(row["value"]) : null;
  }

  async deleteStoredSecret(): Promise<void> {
    this.#prepare("DELETE FROM meta WHERE key = 'secret'").run();
    this.#erased = true;
    await this.purgeErased();
  }

  async ping(): Promise<void> {
    this.#prepare("SELECT 1").get();
  }

  async probeWrite(now: number): Promise<void> {
    // A real write that reaches the WAL file: a rolled-back one may never leave the page cache.
    this.#prepare("INSERT INTO meta (key, value) VALUES ('heartbeat', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
      .run(String(now));
  }

  async purgeErased(): Promise<void> {
    if (!this.#erased) return;
    // The WAL keeps every page as it was before the payload was erased, until a checkpoint copies
    // the new pages into the database (where secure_delete zeroes the old bytes) and TRUNCATE
    // empties the WAL. A reader in another process can hold it back: then nothing waits (the event
    // loop would), and the next call tries again.
    const timeout = this.#db.pragma("busy_timeout", { simple: true }) as number;
    this.#db.pragma("busy_timeout = 0");
    try {
      const [result] = this.#db.pragma("wal_checkpoint(TRUNCATE)") as { busy: number }[];
      if (result?.busy === 0) this.#erased = false;
    } finally {
      this.#db.pragma(`busy_timeout = ${timeout}`);
    }
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }

  async findNameHolder(username: string, now: number): Promise<"pending" | "account" | null> {
    const row = this.#prepare("SELECT state FROM users WHERE username = ? AND (state = 'active' OR expires_at > ?)")
      .get(username, now) as Row | undefined;
    return toHolder(row);
  }

  async findSkeletonHolder(skeleton: string, now: number): Promise<"pending" | "account" | null> {
    // 'active' sorts before 'pending': an account wins over a pending registration.
    const row = this.#prepare(
        "SELECT state FROM users WHERE skeleton = ? AND (state = 'active' OR expires_at > ?) ORDER BY state LIMIT 1",
      )
      .get(skeleton, now) as Row | undefined;
    return toHolder(row);
  }

  async isMailHashHeld(mailHash: string, now: number): Promise<boolean> {
    const row = this.#prepare("SELECT 1 FROM users WHERE mail_hash = ? AND (state = 'active' OR expires_at > ?)")
      .get(mailHash, now);
    return row !== undefined;
  }

  async insertPending(pending: NewPending, outbox: NewOutboxItem[]): Promise<InsertPendingResult> {
    const db = this.#db;
    const run = db.transaction((): InsertPendingResult => {
      const expired = this.#prepare(
          "SELECT id FROM users WHERE state = 'pending' AND expires_at <= ? AND (username = ? OR mail_hash = ?)",
        )
        .all(pending.createdAt, pending.username, pending.mailHash) as Row[];
      for (const row of expired) this.#deletePendingRow(Number(row["id"]));
      const result = this.#prepare(
          `INSERT INTO users (username, skeleton, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at, sealed_secret)
           VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)`,
        )
        .run(
          pending.username,
          pending.skeleton,
          pending.passwordHash,
          pending.mailHash,
          pending.tokenHash,
          pending.ip,
          pending.createdAt,
          pending.expiresAt,
          pending.sealedSecret ?? null,
        );
      const id = Number(result.lastInsertRowid);
      for (const item of outbox) this.#insertOutbox(item, id);
      return { ok: true, id };
    });
    try {
      return run.immediate();
    } catch (err) {
      const column = uniqueViolation(err);
      if (column === "username") return { ok: false, conflict: "username" };
      if (column === "mail_hash") return { ok: false, conflict: "mail" };
      throw err;
    }
  }

  #deletePendingRow(id: number): void {
    this.#erased = true;
    this.#prepare("DELETE FROM outbox WHERE user_id = ? AND kind = 'mail' AND state = 'queued'").run(id);
    this.#prepare("DELETE FROM users WHERE id = ? AND state = 'pending'").run(id);
  }

  #insertOutbox(item: NewOutboxItem, userId: number | null): void {
    this.#prepare(
        "INSERT INTO outbox (kind, user_id, target, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .run(item.kind, userId, item.target ?? null, item.payload, item.createdAt, item.createdAt);
  }

  async findByTokenHash(tokenHash: string, now: number): Promise<TokenLookup | null> {
    const row = this.#prepare("SELECT username, state, expires_at FROM users WHERE token_hash = ?")
      .get(tokenHash) as Row | undefined;
    return toTokenLookup(row, now);
  }

  async activatePending(
    tokenHash: string,
    now: number,
    events: (account: AccountSummary, sealedSecret: string | null) => NewOutboxItem[],
  ): Promise<ActivateResult | null> {
    const db = this.#db;
    const run = db.transaction((): ActivateResult | null => {
      const sealed = this.#prepare("SELECT sealed_secret FROM users WHERE token_hash = ? AND state = 'pending'")
        .get(tokenHash) as Row | undefined;
      const row = this.#prepare(
          `UPDATE users SET state = 'active', verified_at = ?, expires_at = NULL, ip = NULL, sealed_secret = NULL
           WHERE token_hash = ? AND state = 'pending' AND expires_at > ?
           RETURNING ${ACCOUNT_COLUMNS}`,
        )
        .get(now, tokenHash, now) as Row | undefined;
      if (row) {
        const account = toAccount(row);
        const secret = sealed?.["sealed_secret"] == null ? null : String(sealed["sealed_secret"]);
        if (secret !== null) this.#erased = true;
        for (const item of events(account, secret)) this.#insertOutbox(item, account.id);
        return { outcome: "created", account };
      }
      const active = this.#prepare("SELECT username FROM users WHERE token_hash = ? AND state = 'active'")
        .get(tokenHash) as Row | undefined;
      return active ? { outcome: "already-active", username: String(active["username"]) } : null;
    });
    return run.immediate();
  }

  async listPending(now: number): Promise<PendingSummary[]> {
    const rows = this.#prepare(
        `SELECT u.id, u.username, u.ip, u.created_at, u.expires_at,
                (SELECT o.state FROM outbox o WHERE o.user_id = u.id AND o.kind = 'mail' ORDER BY o.id DESC LIMIT 1) AS mail_state
         FROM users u WHERE u.state = 'pending' AND u.expires_at > ? ORDER BY u.created_at, u.id`,
      )
      .all(now) as Row[];
    return rows.map(toPendingSummary);
  }

  async listAccounts(): Promise<AccountSummary[]> {
    const rows = this.#prepare(`SELECT ${ACCOUNT_COLUMNS} FROM users WHERE state = 'active' ORDER BY username`)
      .all() as Row[];
    return rows.map(toAccount);
  }

  async deleteAccount(username: string): Promise<boolean> {
    const result = this.#prepare("DELETE FROM users WHERE username = ? AND state = 'active'").run(username);
    return result.changes > 0;
  }

  async deleteExpiredPending(now: number): Promise<number> {
    const db = this.#db;
    const run = db.transaction(() => {
      const rows = this.#prepare("SELECT id FROM users WHERE state = 'pending' AND expires_at <= ?")
        .all(now) as Row[];
      for (const row of rows) this.#deletePendingRow(Number(row["id"]));
      return rows.length;
    });
    return run.immediate();
  }

  async forgetTokensVerifiedBefore(before: number): Promise<number> {
    return this.#prepare("UPDATE users SET token_hash = NULL WHERE state = 'active' AND token_hash IS NOT NULL AND verified_at < ?")
      .run(before).changes;
  }

  async findLogin(username: string): Promise<LoginRecord | null> {
    const row = this.#prepare("SELECT id, username, password_hash FROM users WHERE username = ? AND state = 'active'")
      .get(username) as Row | undefined;
    return row ? { id: Number(row["id"]), username: String(row["username"]), passwordHash: String(row["password_hash"]) } : null;
  }

  async insertApiKey(key: ApiKeyRecord): Promise<void> {
    this.#prepare("INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)")
      .run(key.id, key.name, key.secretHash, key.createdAt);
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const row = this.#prepare("SELECT * FROM api_keys WHERE id = ?").get(id) as Row | undefined;
    return row ? toApiKey(row) : null;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    return (this.#prepare("SELECT * FROM api_keys ORDER BY created_at, id").all() as Row[]).map(toApiKey);
  }

  async deleteApiKey(id: string): Promise<boolean> {
    return this.#prepare("DELETE FROM api_keys WHERE id = ?").run(id).changes > 0;
  }

  async insertInvite(invite: NewInvite): Promise<InviteRecord> {
    const row = this.#prepare(
        `INSERT INTO invites (handle, token_hash, issuer_kind, issuer_id, issuer_name, username, uses_total, uses_left, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(
        invite.handle,
        invite.tokenHash,
        invite.issuerKind,
        invite.issuerId,
        invite.issuerName,
        invite.username,
        invite.uses,
        invite.uses,
        invite.createdAt,
        invite.expiresAt,
      ) as Row;
    return toInvite(row);
  }

  async findInviteByTokenHash(tokenHash: string): Promise<InviteRecord | null> {
    const row = this.#prepare("SELECT * FROM invites WHERE token_hash = ?").get(tokenHash) as Row | undefined;
    return row ? toInvite(row) : null;
  }

  async findInviteByHandle(handle: string): Promise<InviteRecord | null> {
    const row = this.#prepare("SELECT * FROM invites WHERE handle = ?").get(handle) as Row | undefined;
    return row ? toInvite(row) : null;
  }

  async listInvites(): Promise<InviteRecord[]> {
    return (this.#prepare("SELECT * FROM invites ORDER BY created_at, id").all() as Row[]).map(toInvite);
  }

  async revokeInvite(id: number, now: number): Promise<boolean> {
    return this.#prepare("UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(now, id).changes > 0;
  }

  async acceptInvite(
    tokenHash: string,
    now: number,
    account: NewAccount,
    events: (account: AccountSummary) => NewOutboxItem[],
  ): Promise<AcceptInviteResult> {
    const db = this.#db;
    class NameTaken extends Error {}
    const run = db.transaction((): AcceptInviteResult => {
      const invite = this.#prepare(
          `UPDATE invites SET uses_left = uses_left - 1
           WHERE token_hash = ? AND uses_left > 0 AND revoked_at IS NULL AND expires_at > ?
           RETURNING id, issuer_name`,
        )
        .get(tokenHash, now) as Row | undefined;
      if (!invite) return { ok: false, reason: "gone" };
      // A pending registration that has run out no longer holds its name.
      const expired = this.#prepare("SELECT id FROM users WHERE username = ? AND state = 'pending' AND expires_at <= ?")
        .get(account.username, now) as Row | undefined;
      if (expired) this.#deletePendingRow(Number(expired["id"]));
      let row: Row;
      try {
        row = this.#prepare(
            `INSERT INTO users (username, skeleton, password_hash, state, created_at, verified_at, invited_by, invite_id)
             VALUES (?, ?, ?, 'active', ?, ?, ?, ?) RETURNING ${ACCOUNT_COLUMNS}`,
          )
          .get(account.username, account.skeleton, account.passwordHash, now, now, invite["issuer_name"], invite["id"]) as Row;
      } catch (err) {
        // Throwing rolls the whole transaction back, so the invite keeps its use.
        if (uniqueViolation(err) === "username") throw new NameTaken();
        throw err;
      }
      const created = toAccount(row);
      for (const item of events(created)) this.#insertOutbox(item, created.id);
      return { ok: true, account: created };
    });
    try {
      return run.immediate();
    } catch (err) {
      if (err instanceof NameTaken) return { ok: false, reason: "username-taken" };
      throw err;
    }
  }

  async insertSession(tokenHash: string, userId: number, createdAt: number, expiresAt: number): Promise<void> {
    this.#prepare("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
      .run(tokenHash, userId, createdAt, expiresAt);
  }

  async findSession(tokenHash: string, now: number): Promise<SessionRecord | null> {
    const row = this.#prepare(
        `SELECT s.user_id, s.expires_at, u.username FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > ? AND u.state = 'active'`,
      )
      .get(tokenHash, now) as Row | undefined;
    return row ? { userId: Number(row["user_id"]), username: String(row["username"]), expiresAt: Number(row["expires_at"]) } : null;
  }

  async extendSession(tokenHash: string, expiresAt: number): Promise<void> {
    this.#prepare("UPDATE sessions SET expires_at = ? WHERE token_hash = ?").run(expiresAt, tokenHash);
  }

  async deleteSession(tokenHash: string): Promise<void> {
    this.#prepare("DELETE FROM sessions WHERE token_hash = ?").run(tokenHash);
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    return this.#prepare("DELETE FROM sessions WHERE expires_at <= ?").run(now).changes;
  }

  async claimOutbox(now: number, leaseUntil: number, limit: number): Promise<OutboxItem[]> {
    // Ordered by due time so the plan walks the partial index of queued rows (outbox_due); ordered
    // by id it scanned every row ever sent. An account's events keep their order by the EXISTS.
    const rows = this.#prepare(
        `UPDATE outbox SET lease_until = ?, attempts = attempts + 1
         WHERE id IN (SELECT o.id FROM outbox o
                      WHERE o.state = 'queued' AND o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?)
                        AND NOT (o.kind = 'event' AND EXISTS (
                          SELECT 1 FROM outbox e
                          WHERE e.kind = 'event' AND e.state = 'queued' AND e.user_id = o.user_id AND e.id < o.id))
                        AND NOT (o.kind = 'event' AND EXISTS (
                          SELECT 1 FROM outbox p
                          WHERE p.kind = 'provision' AND p.state <> 'sent' AND p.user_id = o.user_id))
                      ORDER BY o.next_attempt_at, o.id LIMIT ?)
         RETURNING id, kind, payload, attempts, user_id, target`,
      )
      .all(leaseUntil, now, now, limit) as Row[];
    return rows
      .map(toOutboxItem)
      .sort((a, b) => a.id - b.id);
  }

  async markOutboxSent(id: number, now: number): Promise<void> {
    // The payload held the address and the token; once sent it has no reason to exist.
    this.#prepare("UPDATE outbox SET state = 'sent', payload = NULL, lease_until = NULL, last_error = NULL, done_at = ? WHERE id = ?")
      .run(now, id);
    this.#erased = true;
  }

  async markOutboxRetry(id: number, nextAttemptAt: number, error: string): Promise<void> {
    this.#prepare("UPDATE outbox SET next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?")
      .run(nextAttemptAt, error.slice(0, 500), id);
  }

  async markOutboxFailed(id: number, error: string, now: number): Promise<void> {
    this.#prepare("UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = ?, done_at = ? WHERE id = ?")
      .run(error.slice(0, 500), now, id);
  }

  async outboxDepth(): Promise<number> {
    const row = this.#prepare("SELECT count(*) AS n FROM outbox WHERE state = 'queued'").get() as Row;
    return Number(row["n"]);
  }

  async listProvisionJobs(userId?: number): Promise<ProvisionJobState[]> {
    // The latest job per account and target: a retried or re-made account shows its newest state.
    const rows = this.#prepare(
        `SELECT o.user_id, o.target, o.state, o.last_error FROM outbox o
         WHERE o.kind = 'provision' AND o.user_id IS NOT NULL AND (? IS NULL OR o.user_id = ?)
           AND o.id = (SELECT max(l.id) FROM outbox l WHERE l.kind = 'provision' AND l.user_id = o.user_id AND l.target = o.target)
         ORDER BY o.user_id, o.target`,
      )
      .all(userId ?? null, userId ?? null) as Row[];
    return rows.map(toProvisionJob);
  }

  async removeAccount(
    username: string,
    now: number,
    jobs: (account: AccountSummary) => NewOutboxItem[],
    options: { restoreInvite?: boolean } = {},
  ): Promise<AccountSummary | null> {
    const run = this.#db.transaction((): AccountSummary | null => {
      const row = this.#prepare(`SELECT ${ACCOUNT_COLUMNS}, invite_id FROM users WHERE username = ? AND state = 'active'`).get(username) as Row | undefined;
      if (!row) return null;
      const account = toAccount(row);
      if (options.restoreInvite && row["invite_id"] != null) {
        this.#prepare("UPDATE invites SET uses_left = min(uses_left + 1, uses_total) WHERE id = ?").run(row["invite_id"]);
      }
      this.#prepare(
        `UPDATE outbox SET payload = NULL, lease_until = NULL,
                state = CASE WHEN state = 'queued' THEN 'failed' ELSE state END,
                last_error = CASE WHEN state = 'queued' THEN 'account removed' ELSE last_error END,
                done_at = COALESCE(done_at, ?)
         WHERE user_id = ? AND kind = 'provision' AND state <> 'sent'`,
      ).run(now, account.id);
      this.#prepare("DELETE FROM outbox WHERE user_id = ? AND kind = 'event' AND state = 'queued'").run(account.id);
      this.#prepare("DELETE FROM users WHERE id = ?").run(account.id);
      for (const item of jobs(account)) this.#insertOutbox(item, null);
      this.#erased = true;
      return account;
    });
    return run.immediate();
  }

  async retryProvision(username: string, now: number): Promise<number | null> {
    const run = this.#db.transaction((): number | null => {
      const user = this.#prepare("SELECT id FROM users WHERE username = ? AND state = 'active'").get(username) as Row | undefined;
      if (!user) return null;
      return this.#prepare(
        `UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?, done_at = NULL
         WHERE user_id = ? AND kind = 'provision' AND state IN ('queued', 'failed') AND payload IS NOT NULL`,
      ).run(now, user["id"]).changes;
    });
    return run.immediate();
  }

  async provisionQueue(): Promise<{ depth: number; oldestCreatedAt: number | null }> {
    const row = this.#prepare("SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE kind = 'provision' AND state = 'queued'").get() as Row;
    return { depth: Number(row["n"]), oldestCreatedAt: row["oldest"] == null ? null : Number(row["oldest"]) };
  }

  async requeuePendingMail(username: string, now: number): Promise<RequeueMailResult> {
    const db = this.#db;
    const run = db.transaction((): RequeueMailResult => {
      const user = this.#prepare("SELECT id FROM users WHERE username = ? AND state = 'pending' AND expires_at > ?")
        .get(username, now) as Row | undefined;
      if (!user) return { ok: false, reason: "no-pending" };
      const item = this.#prepare("SELECT id, state, payload FROM outbox WHERE user_id = ? AND kind = 'mail' ORDER BY id DESC LIMIT 1")
        .get(user["id"]) as Row | undefined;
      if (!item) return { ok: false, reason: "no-mail" };
      if (item["state"] === "sent") return { ok: false, reason: "sent" };
      if (item["payload"] == null) return { ok: false, reason: "no-mail" };
      this.#prepare(
        `UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ?, last_error = NULL, done_at = NULL,
                lease_until = CASE WHEN lease_until > ? THEN lease_until ELSE NULL END
         WHERE id = ?`,
      ).run(now, now, item["id"]);
      return { ok: true, previous: item["state"] as "queued" | "failed" };
    });
    return run.immediate();
  }
}
