import pg from "pg";
import type {
  AcceptInviteResult,
  AccountSummary,
  ActivateResult,
  ApiKeyRecord,
  InsertPendingResult,
  InviteRecord,
  LoginRecord,
  NewAccount,
  NewInvite,
  NewOutboxItem,
  NewPending,
  OutboxItem,
  PendingSummary,
  ProvisionJobState,
  RequeueMailResult,
  SessionRecord,
  Store,
  TokenLookup,
} from "../store.ts";
import { ACCOUNT_COLUMNS, toAccount, toApiKey, toInvite, toOutboxItem, toHolder, toPendingSummary, toProvisionJob, toTokenLookup, type Row } from "../rows.ts";
import { CommitOutcomeUnknown, isConnectionLoss, Reconnecting, type IfCommitUnknown } from "./connection-loss.ts";
import { POSTGRES_MIGRATIONS } from "./migrations.ts";

// BIGINT columns (ids, epoch-millisecond times, counts) arrive as strings; every mapper goes through Number().
type Queryable = pg.Pool | pg.PoolClient;

/** Which unique constraint an error names, so a lost race maps to the right refusal. */
function uniqueViolation(err: unknown): string | null {
  const e = err as { code?: string; constraint?: string };
  if (e.code !== "23505") return null;
  return e.constraint ?? "unknown";
}

class NameTaken extends Error {}

export interface PostgresStoreOptions {
  /** Told (at most once a second) when connections are lost: a restart, a failover, a reaper. */
  onConnectionLoss?: (reason: string, alsoLost: number) => void;
}

export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  readonly #pool: pg.Pool;
  readonly #reconnecting: Reconnecting;
  #closed = false;

  /** `url` may carry `?options=-c%20search_path%3D<schema>` to keep the tables in a schema of their own. */
  constructor(url: string, options: PostgresStoreOptions = {}) {
    this.#pool = new pg.Pool({ connectionString: url, max: 10 });
    this.#reconnecting = new Reconnecting(options.onConnectionLoss ?? (() => {}));
    // An idle client whose connection drops is removed from the pool; without a listener the
    // 'error' event would end the process. The pool opens a new connection for the next query.
    this.#pool.on("error", (err) => this.#reconnecting.lost(err));
    // A checked-out client has no listener of the pool's: a connection lost between two statements
    // would emit 'error' with nobody listening, which ends the process. The next statement on that
    // client fails, and it is that failure that counts.
    this.#pool.on("connect", (client) => client.on("error", () => {}));
  }

  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = new PostgresStore(url, options);
    try {
      // Straight to the pool, not through the retry: at start-up the operator wants the real reason.
      await store.#pool.query("SELECT 1");
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** A statement that may run twice (a read, or a write whose second run changes nothing); see connection-loss.ts. */
  #query<R extends pg.QueryResultRow = Row>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#reconnecting.rerun(() => this.#pool.query<R>(text, values));
  }

  /** A write whose second run could answer differently: a lost connection is a 503, not a retry. */
  #queryOnce<R extends pg.QueryResultRow = Row>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    return this.#reconnecting.once(() => this.#pool.query<R>(text, values));
  }

  /**
   * Runs `work` on one dedicated connection inside BEGIN … COMMIT; any throw rolls it all back.
   * Lost before COMMIT, it runs again; lost during COMMIT, `ifCommitUnknown` decides.
   */
  #transaction<T>(work: (client: pg.PoolClient) => Promise<T>, ifCommitUnknown: IfCommitUnknown<T>): Promise<T> {
    return this.#reconnecting.transaction(() => this.#transactionOnce(work), ifCommitUnknown);
  }

  async #transactionOnce<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    let committing = false;
    try {
      await client.query("BEGIN");
      const result = await work(client);
      committing = true;
      await client.query("COMMIT");
      return result;
    } catch (err) {
      if (isConnectionLoss(err)) {
        broken = err as Error;
        throw committing ? new CommitOutcomeUnknown(err) : err;
      }
      try {
        await client.query("ROLLBACK");
      } catch (rollbackErr) {
        // A connection that cannot even roll back is not handed to the next caller.
        broken = rollbackErr as Error;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async migrate(): Promise<void> {
    await this.#transaction(async (client) => {
      // Instances starting together queue here; the lock is per schema and ends with the transaction.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('gatehouse.migrate'), hashtext(current_schema()))");
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
      );
      const { rows } = await client.query<Row>("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations");
      const version = Number(rows[0]?.["version"] ?? 0);
      for (let i = version; i < POSTGRES_MIGRATIONS.length; i++) {
        const step = POSTGRES_MIGRATIONS[i]!;
        if (typeof step === "string") await client.query(step);
        else await step(client);
        await client.query(
          "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
          [i + 1],
        );
      }
      // A second run after an unknown COMMIT finds the versions recorded and does nothing.
    }, "rerun");
  }

  async loadSecret(candidate: string): Promise<string> {
    await this.#query("INSERT INTO meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING", [
      candidate,
    ]);
    const { rows } = await this.#query<Row>("SELECT value FROM meta WHERE key = 'secret'");
    return String(rows[0]!["value"]);
  }

  async findStoredSecret(): Promise<string | null> {
    const { rows } = await this.#query<Row>("SELECT value FROM meta WHERE key = 'secret'");
    return rows[0] ? String(rows[0]["value"]) : null;
  }

  async deleteStoredSecret(): Promise<void> {
    await this.#query("DELETE FROM meta WHERE key = 'secret'");
  }

  async ping(): Promise<void> {
    await this.#query("SELECT 1");
  }

  async probeWrite(now: number): Promise<void> {
    await this.#query(
      "INSERT INTO meta (key, value) VALUES ('heartbeat', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
      [String(now)],
    );
  }

  async purgeErased(): Promise<void> {
    // Old row versions are the server's to reclaim (VACUUM) and its WAL is not in our files.
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async findNameHolder(username: string, now: number): Promise<"pending" | "account" | null> {
    const { rows } = await this.#query<Row>(
      "SELECT state FROM users WHERE username = $1 AND (state = 'active' OR expires_at > $2)",
      [username, now],
    );
    return toHolder(rows[0]);
  }

  async findSkeletonHolder(skeleton: string, now: number): Promise<"pending" | "account" | null> {
    // 'active' sorts before 'pending': an account wins over a pending registration.
    const { rows } = await this.#query<Row>(
      "SELECT state FROM users WHERE skeleton = $1 AND (state = 'active' OR expires_at > $2) ORDER BY state LIMIT 1",
      [skeleton, now],
    );
    return toHolder(rows[0]);
  }

  async isMailHashHeld(mailHash: string, now: number): Promise<boolean> {
    const { rowCount } = await this.#query(
      "SELECT 1 FROM users WHERE mail_hash = $1 AND (state = 'active' OR expires_at > $2)",
      [mailHash, now],
    );
    return (rowCount ?? 0) > 0;
  }

  async insertPending(pending: NewPending, outbox: NewOutboxItem[]): Promise<InsertPendingResult> {
    try {
      return await this.#transaction(async (client): Promise<InsertPendingResult> => {
        await client.query(
          `WITH voided AS (
             DELETE FROM users WHERE state = 'pending' AND expires_at <= $1 AND (username = $2 OR mail_hash = $3)
             RETURNING id)
           DELETE FROM outbox WHERE kind = 'mail' AND state = 'queued' AND user_id IN (SELECT id FROM voided)`,
          [pending.createdAt, pending.username, pending.mailHash],
        );
        const { rows } = await client.query<Row>(
          `INSERT INTO users (username, skeleton, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at, sealed_secret)
           VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8, $9) RETURNING id`,
          [
            pending.username,
            pending.skeleton,
            pending.passwordHash,
            pending.mailHash,
            pending.tokenHash,
            pending.ip,
            pending.createdAt,
            pending.expiresAt,
            pending.sealedSecret ?? null,
          ],
        );
        const id = Number(rows[0]!["id"]);
        for (const item of outbox) await this.#insertOutbox(client, item, id);
        return { ok: true, id };
        // The token hash is new with this request: a row holding it is this transaction's commit.
        // A plain second run would instead meet its own row and answer "username pending" (409).
      }, async () => {
        const { rows } = await this.#query<Row>("SELECT id FROM users WHERE token_hash = $1", [pending.tokenHash]);
        return rows[0] ? { ok: true, id: Number(rows[0]["id"]) } : null;
      });
    } catch (err) {
      const constraint = uniqueViolation(err);
      if (constraint === "users_username_key") return { ok: false, conflict: "username" };
      if (constraint === "users_mail_hash_key") return { ok: false, conflict: "mail" };
      throw err;
    }
  }

  async #insertOutbox(q: Queryable, item: NewOutboxItem, userId: number | null): Promise<void> {
    await q.query(
      "INSERT INTO outbox (kind, user_id, target, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
      [item.kind, userId, item.target ?? null, item.payload, item.createdAt, item.createdAt],
    );
  }

  async findByTokenHash(tokenHash: string, now: number): Promise<TokenLookup | null> {
    const { rows } = await this.#query<Row>(
      "SELECT username, state, expires_at FROM users WHERE token_hash = $1",
      [tokenHash],
    );
    return toTokenLookup(rows[0], now);
  }

  async activatePending(
    tokenHash: string,
    now: number,
    events: (account: AccountSummary, sealedSecret: string | null) => NewOutboxItem[],
  ): Promise<ActivateResult | null> {
    return this.#transaction(async (client): Promise<ActivateResult | null> => {
      // A concurrent completion holds the row lock; once it commits, this UPDATE re-checks
      // state = 'pending' against the new row and matches nothing. The sealed secret is read from
      // the row as it was (the FROM self-join), and erased from it.
      const { rows } = await client.query<Row>(
        `UPDATE users u SET state = 'active', verified_at = $1, expires_at = NULL, ip = NULL, sealed_secret = NULL
         FROM users old
         WHERE old.id = u.id AND u.token_hash = $2 AND u.state = 'pending' AND u.expires_at > $1
         RETURNING ${ACCOUNT_COLUMNS.split(", ").map((c) => `u.${c}`).join(", ")}, old.sealed_secret AS old_sealed_secret`,
        [now, tokenHash],
      );
      const row = rows[0];
      if (row) {
        const account = toAccount(row);
        const secret = row["old_sealed_secret"] == null ? null : String(row["old_sealed_secret"]);
        for (const item of events(account, secret)) await this.#insertOutbox(client, item, account.id);
        return { outcome: "created", account };
      }
      const active = await client.query<Row>(
        "SELECT username FROM users WHERE token_hash = $1 AND state = 'active'",
        [tokenHash],
      );
      const activeRow = active.rows[0];
      return activeRow ? { outcome: "already-active", username: String(activeRow["username"]) } : null;
      // Activated at exactly `now`, the account is this transaction's (a second run would say "already active").
    }, async () => {
      const { rows } = await this.#query<Row>(
        `SELECT ${ACCOUNT_COLUMNS} FROM users WHERE token_hash = $1 AND state = 'active' AND verified_at = $2`,
        [tokenHash, now],
      );
      return rows[0] ? { outcome: "created", account: toAccount(rows[0]) } : null;
    });
  }

  async listPending(now: number): Promise<PendingSummary[]> {
    const { rows } = await this.#query<Row>(
      `SELECT u.id, u.username, u.ip, u.created_at, u.expires_at,
              (SELECT o.state FROM outbox o WHERE o.user_id = u.id AND o.kind = 'mail' ORDER BY o.id DESC LIMIT 1) AS mail_state
       FROM users u WHERE u.state = 'pending' AND u.expires_at > $1 ORDER BY u.created_at, u.id`,
      [now],
    );
    return rows.map(toPendingSummary);
  }

  async listAccounts(): Promise<AccountSummary[]> {
    const { rows } = await this.#query<Row>(
      `SELECT ${ACCOUNT_COLUMNS} FROM users WHERE state = 'active' ORDER BY username`,
    );
    return rows.map(toAccount);
  }

  async deleteAccount(username: string): Promise<boolean> {
    const { rowCount } = await this.#queryOnce("DELETE FROM users WHERE username = $1 AND state = 'active'", [
      username,
    ]);
    return (rowCount ?? 0) > 0;
  }

  async deleteExpiredPending(now: number): Promise<number> {
    const { rows } = await this.#query<Row>(
      `WITH voided AS (
         DELETE FROM users WHERE state = 'pending' AND expires_at <= $1 RETURNING id),
       mail AS (
         DELETE FROM outbox WHERE kind = 'mail' AND state = 'queued' AND user_id IN (SELECT id FROM voided))
       SELECT count(*) AS n FROM voided`,
      [now],
    );
    return Number(rows[0]!["n"]);
  }

  async forgetTokensVerifiedBefore(before: number): Promise<number> {
    const { rowCount } = await this.#query(
      "UPDATE users SET token_hash = NULL WHERE state = 'active' AND token_hash IS NOT NULL AND verified_at < $1",
      [before],
    );
    return rowCount ?? 0;
  }

  async findLogin(username: string): Promise<LoginRecord | null> {
    const { rows } = await this.#query<Row>(
      "SELECT id, username, password_hash FROM users WHERE username = $1 AND state = 'active'",
      [username],
    );
    const row = rows[0];
    return row
      ? { id: Number(row["id"]), username: String(row["username"]), passwordHash: String(row["password_hash"]) }
      : null;
  }

  async insertApiKey(key: ApiKeyRecord): Promise<void> {
    await this.#queryOnce("INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)", [
      key.id,
      key.name,
      key.secretHash,
      key.createdAt,
    ]);
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.#query<Row>("SELECT * FROM api_keys WHERE id = $1", [id]);
    return rows[0] ? toApiKey(rows[0]) : null;
  }

  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const { rows } = await this.#query<Row>("SELECT * FROM api_keys ORDER BY created_at, id");
    return rows.map(toApiKey);
  }

  async deleteApiKey(id: string): Promise<boolean> {
    const { rowCount } = await this.#queryOnce("DELETE FROM api_keys WHERE id = $1", [id]);
    return (rowCount ?? 0) > 0;
  }

  async insertInvite(invite: NewInvite): Promise<InviteRecord> {
    const { rows } = await this.#queryOnce<Row>(
      `INSERT INTO invites (handle, token_hash, issuer_kind, issuer_id, issuer_name, username, uses_total, uses_left, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9) RETURNING *`,
      [
        invite.handle,
        invite.tokenHash,
        invite.issuerKind,
        invite.issuerId,
        invite.issuerName,
        invite.username,
        invite.uses,
        invite.createdAt,
        invite.expiresAt,
      ],
    );
    return toInvite(rows[0]!);
  }

  async findInviteByTokenHash(tokenHash: string): Promise<InviteRecord | null> {
    const { rows } = await this.#query<Row>("SELECT * FROM invites WHERE token_hash = $1", [tokenHash]);
    return rows[0] ? toInvite(rows[0]) : null;
  }

  async findInviteByHandle(handle: string): Promise<InviteRecord | null> {
    const { rows } = await this.#query<Row>("SELECT * FROM invites WHERE handle = $1", [handle]);
    return rows[0] ? toInvite(rows[0]) : null;
  }

  async listInvites(): Promise<InviteRecord[]> {
    const { rows } = await this.#query<Row>("SELECT * FROM invites ORDER BY created_at, id");
    return rows.map(toInvite);
  }

  async revokeInvite(id: number, now: number): Promise<boolean> {
    const { rowCount } = await this.#queryOnce(
      "UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
      [now, id],
    );
    return (rowCount ?? 0) > 0;
  }

  async acceptInvite(
    tokenHash: string,
    now: number,
    account: NewAccount,
    events: (account: AccountSummary) => NewOutboxItem[],
  ): Promise<AcceptInviteResult> {
    try {
      return await this.#transaction(async (client): Promise<AcceptInviteResult> => {
        // The row lock taken here makes concurrent accepts of one invite queue; each re-checks
        // uses_left > 0 against the committed row, so a one-use invite has exactly one winner.
        const invited = await client.query<Row>(
          `UPDATE invites SET uses_left = uses_left - 1
           WHERE token_hash = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2
           RETURNING id, issuer_name`,
          [tokenHash, now],
        );
        const invite = invited.rows[0];
        if (!invite) return { ok: false, reason: "gone" };
        // A pending registration that has run out no longer holds its name; its unsent mail goes with it.
        await client.query(
          `WITH voided AS (
             DELETE FROM users WHERE username = $1 AND state = 'pending' AND expires_at <= $2 RETURNING id)
           DELETE FROM outbox WHERE kind = 'mail' AND state = 'queued' AND user_id IN (SELECT id FROM voided)`,
          [account.username, now],
        );
        let row: Row;
        try {
          const inserted = await client.query<Row>(
            `INSERT INTO users (username, skeleton, password_hash, state, created_at, verified_at, invited_by, invite_id)
             VALUES ($1, $2, $3, 'active', $4, $4, $5, $6) RETURNING ${ACCOUNT_COLUMNS}`,
            [account.username, account.skeleton, account.passwordHash, now, invite["issuer_name"], invite["id"]],
          );
          row = inserted.rows[0]!;
        } catch (err) {
          // Throwing rolls the whole transaction back, so the invite keeps its use.
          if (uniqueViolation(err) === "users_username_key") throw new NameTaken();
          throw err;
        }
        const created = toAccount(row);
        for (const item of events(created)) await this.#insertOutbox(client, item, created.id);
        return { ok: true, account: created };
        // The password hash is salted afresh for this request: an account holding it is this
        // transaction's commit. A plain second run would find the name taken (409) or the invite used (410).
      }, async () => {
        const { rows } = await this.#query<Row>(
          `SELECT ${ACCOUNT_COLUMNS} FROM users WHERE username = $1 AND password_hash = $2 AND state = 'active'`,
          [account.username, account.passwordHash],
        );
        return rows[0] ? { ok: true, account: toAccount(rows[0]) } : null;
      });
    } catch (err) {
      if (err instanceof NameTaken) return { ok: false, reason: "username-taken" };
      throw err;
    }
  }

  async insertSession(tokenHash: string, userId: number, createdAt: number, expiresAt: number): Promise<void> {
    await this.#queryOnce(
      "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
      [tokenHash, userId, createdAt, expiresAt],
    );
  }

  async findSession(tokenHash: string, now: number): Promise<SessionRecord | null> {
    const { rows } = await this.#query<Row>(
      `SELECT s.user_id, s.expires_at, u.username FROM sessions s JOIN users u ON u.id = s.user_id
       WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.state = 'active'`,
      [tokenHash, now],
    );
    const row = rows[0];
    return row
      ? { userId: Number(row["user_id"]), username: String(row["username"]), expiresAt: Number(row["expires_at"]) }
      : null;
  }

  async extendSession(tokenHash: string, expiresAt: number): Promise<void> {
    await this.#query("UPDATE sessions SET expires_at = $1 WHERE token_hash = $2", [expiresAt, tokenHash]);
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.#query("DELETE FROM sessions WHERE token_hash = $1", [tokenHash]);
  }

  async deleteExpiredSessions(now: number): Promise<number> {
    const { rowCount } = await this.#query("DELETE FROM sessions WHERE expires_at <= $1", [now]);
    return rowCount ?? 0;
  }

  async claimOutbox(now: number, leaseUntil: number, limit: number): Promise<OutboxItem[]> {
    // SKIP LOCKED lets another instance's claim pass over rows this one is taking; a row it
    // meets just after that claim commits is re-checked against the new lease_until and left out.
    // An earlier event stays 'queued' until its sender commits the outcome, so no instance can
    // overtake it with the account's next event.
    const { rows } = await this.#query<Row>(
      `UPDATE outbox SET lease_until = $1, attempts = attempts + 1
       WHERE id IN (SELECT o.id FROM outbox o
                    WHERE o.state = 'queued' AND o.next_attempt_at <= $2 AND (o.lease_until IS NULL OR o.lease_until <= $2)
                      AND NOT (o.kind = 'event' AND EXISTS (
                        SELECT 1 FROM outbox e
                        WHERE e.kind = 'event' AND e.state = 'queued' AND e.user_id = o.user_id AND e.id < o.id))
                      AND NOT (o.kind = 'event' AND EXISTS (
                        SELECT 1 FROM outbox p
                        WHERE p.kind = 'provision' AND p.state <> 'sent' AND p.user_id = o.user_id))
                    ORDER BY o.next_attempt_at, o.id LIMIT $3
                    FOR UPDATE OF o SKIP LOCKED)
       RETURNING id, kind, payload, attempts, user_id, target`,
      [leaseUntil, now, limit],
    );
    return rows
      .map(toOutboxItem)
      .sort((a, b) => a.id - b.id);
  }

  async markOutboxSent(id: number, now: number): Promise<void> {
    // The payload held the address and the token; once sent it has no reason to exist.
    await this.#query(
      "UPDATE outbox SET state = 'sent', payload = NULL, lease_until = NULL, last_error = NULL, done_at = $1 WHERE id = $2",
      [now, id],
    );
  }

  async markOutboxRetry(id: number, nextAttemptAt: number, error: string): Promise<void> {
    await this.#query("UPDATE outbox SET next_attempt_at = $1, lease_until = NULL, last_error = $2 WHERE id = $3", [
      nextAttemptAt,
      error.slice(0, 500),
      id,
    ]);
  }

  async markOutboxFailed(id: number, error: string, now: number): Promise<void> {
    await this.#query(
      "UPDATE outbox SET state = 'failed', lease_until = NULL, last_error = $1, done_at = $2 WHERE id = $3",
      [error.slice(0, 500), now, id],
    );
  }

  async outboxDepth(): Promise<number> {
    const { rows } = await this.#query<Row>("SELECT count(*) AS n FROM outbox WHERE state = 'queued'");
    return Number(rows[0]!["n"]);
  }

  async listProvisionJobs(userId?: number): Promise<ProvisionJobState[]> {
    // The latest job per account and target: a retried or re-made account shows its newest state.
    const { rows } = await this.#query<Row>(
      `SELECT DISTINCT ON (user_id, target) user_id, target, state, last_error FROM outbox
       WHERE kind = 'provision' AND user_id IS NOT NULL AND ($1::bigint IS NULL OR user_id = $1)
       ORDER BY user_id, target, id DESC`,
      [userId ?? null],
    );
    return rows.map(toProvisionJob);
  }

  async removeAccount(
    username: string,
    now: number,
    jobs: (account: AccountSummary) => NewOutboxItem[],
    options: { restoreInvite?: boolean } = {},
  ): Promise<AccountSummary | null> {
    return this.#transaction(async (client): Promise<AccountSummary | null> => {
      const { rows } = await client.query<Row>(
        `DELETE FROM users WHERE username = $1 AND state = 'active' RETURNING ${ACCOUNT_COLUMNS}, invite_id`,
        [username],
      );
      if (!rows[0]) return null;
      const account = toAccount(rows[0]);
      if (options.restoreInvite && rows[0]["invite_id"] != null) {
        await client.query("UPDATE invites SET uses_left = LEAST(uses_left + 1, uses_total) WHERE id = $1", [rows[0]["invite_id"]]);
      }
      await client.query(
        `UPDATE outbox SET payload = NULL, lease_until = NULL,
                state = CASE WHEN state = 'queued' THEN 'failed' ELSE state END,
                last_error = CASE WHEN state = 'queued' THEN 'account removed' ELSE last_error END,
                done_at = COALESCE(done_at, $1)
         WHERE user_id = $2 AND kind = 'provision' AND state <> 'sent'`,
        [now, account.id],
      );
      await client.query("DELETE FROM outbox WHERE user_id = $1 AND kind = 'event' AND state = 'queued'", [account.id]);
      for (const item of jobs(account)) await this.#insertOutbox(client, item, null);
      return account;
    }, "unavailable");
  }

  async retryProvision(username: string, now: number): Promise<number | null> {
    return this.#transaction(async (client): Promise<number | null> => {
      const user = await client.query<Row>("SELECT id FROM users WHERE username = $1 AND state = 'active'", [username]);
      if (!user.rows[0]) return null;
      const { rowCount } = await client.query(
        `UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = $1, done_at = NULL
         WHERE user_id = $2 AND kind = 'provision' AND state IN ('queued', 'failed') AND payload IS NOT NULL`,
        [now, user.rows[0]["id"]],
      );
      return rowCount ?? 0;
    }, "unavailable");
  }

  async provisionQueue(): Promise<{ depth: number; oldestCreatedAt: number | null }> {
    const { rows } = await this.#query<Row>(
      "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE kind = 'provision' AND state = 'queued'",
    );
    const row = rows[0]!;
    return { depth: Number(row["n"]), oldestCreatedAt: row["oldest"] == null ? null : Number(row["oldest"]) };
  }

  async requeuePendingMail(username: string, now: number): Promise<RequeueMailResult> {
    return this.#transaction(async (client): Promise<RequeueMailResult> => {
      const user = await client.query<Row>(
        "SELECT id FROM users WHERE username = $1 AND state = 'pending' AND expires_at > $2",
        [username, now],
      );
      const userRow = user.rows[0];
      if (!userRow) return { ok: false, reason: "no-pending" };
      // The row lock orders this against a sender recording an outcome for the same mail.
      const latest = await client.query<Row>(
        "SELECT id, state, payload FROM outbox WHERE user_id = $1 AND kind = 'mail' ORDER BY id DESC LIMIT 1 FOR UPDATE",
        [userRow["id"]],
      );
      const item = latest.rows[0];
      if (!item) return { ok: false, reason: "no-mail" };
      if (item["state"] === "sent") return { ok: false, reason: "sent" };
      if (item["payload"] == null) return { ok: false, reason: "no-mail" };
      await client.query(
        `UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = $1, last_error = NULL, done_at = NULL,
                lease_until = CASE WHEN lease_until > $1 THEN lease_until ELSE NULL END
         WHERE id = $2`,
        [now, item["id"]],
      );
      return { ok: true, previous: item["state"] as "queued" | "failed" };
      // A second run would report the mail it requeued as found queued.
    }, "unavailable");
  }
}
