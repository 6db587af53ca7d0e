import type pg from "pg";
import { usernameSkeleton } from "../../domain/username.ts";

/** SQL, or code for a step whose values SQL cannot compute; run inside the migration's transaction. */
export type PostgresMigration = string | ((client: pg.PoolClient) => Promise<void>);

/**
 * Versioned schema for PostgreSQL; `schema_migrations` records which steps a database has had.
 * Step N (1-based) is `POSTGRES_MIGRATIONS[N - 1]`. Append new steps, never edit old ones.
 *
 * Times are BIGINT milliseconds since the epoch, as in the SQLite schema, so both backends
 * store exactly what the domain's clock hands them.
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  -- Pending registrations and accounts share one table so that a username or a mail hash
  -- is unique across both by constraint, not by a check before the insert. The constraint
  -- names are what the store maps a lost race to, so they are spelled out.
  CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    mail_hash TEXT,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    token_hash TEXT,
    ip TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    verified_at BIGINT,
    invited_by TEXT,
    invite_id BIGINT,
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_mail_hash_key UNIQUE (mail_hash),
    CONSTRAINT users_token_hash_key UNIQUE (token_hash)
  );
  CREATE INDEX users_pending_expiry ON users (expires_at) WHERE state = 'pending';
  CREATE INDEX users_verified ON users (verified_at) WHERE token_hash IS NOT NULL AND state = 'active';

  CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mail', 'event')),
    user_id BIGINT,
    payload TEXT,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    done_at BIGINT
  );
  CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';
  CREATE INDEX outbox_user ON outbox (user_id);

  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
  );

  CREATE TABLE invites (
    id BIGSERIAL PRIMARY KEY,
    handle TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    issuer_kind TEXT NOT NULL CHECK (issuer_kind IN ('user', 'key', 'admin')),
    issuer_id TEXT NOT NULL,
    issuer_name TEXT NOT NULL,
    username TEXT,
    uses_total INTEGER NOT NULL CHECK (uses_total > 0),
    uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT invites_handle_key UNIQUE (handle),
    CONSTRAINT invites_token_hash_key UNIQUE (token_hash)
  );

  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
  );
  CREATE INDEX sessions_user ON sessions (user_id);
  CREATE INDEX sessions_expiry ON sessions (expires_at);
  `,
  `
  -- claimOutbox looks up an account's earlier queued events to keep them in order.
  CREATE INDEX outbox_event_order ON outbox (user_id, id) WHERE state = 'queued' AND kind = 'event';
  `,
  `
  -- Look-alike names (DESIGN §7 "Identities"): a new name is refused when its UTS #39 skeleton is
  -- an account's or a live pending registration's. Not unique: names already stored may share one.
  ALTER TABLE users ADD COLUMN skeleton TEXT;
  CREATE INDEX users_skeleton ON users (skeleton);
  `,
  fillSkeletons,
  `
  -- Provisioning (DESIGN §9): jobs are outbox items of kind 'provision' naming their target; the
  -- password (and address) a target needs in the clear waits, sealed, with the pending row only.
  ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
  ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('mail', 'event', 'provision'));
  ALTER TABLE outbox ADD COLUMN target TEXT;
  CREATE INDEX outbox_provision_open ON outbox (user_id) WHERE kind = 'provision' AND state <> 'sent';
  ALTER TABLE users ADD COLUMN sealed_secret TEXT;
  `,
];

/** Gives every row stored before the skeleton column its skeleton, a thousand rows at a time. */
async function fillSkeletons(client: pg.PoolClient): Promise<void> {
  for (let last = -1; ; ) {
    const { rows } = await client.query<{ id: string; username: string }>(
      "SELECT id, username FROM users WHERE id > $1 ORDER BY id LIMIT 1000",
      [last],
    );
    if (rows.length === 0) return;
    await client.query(
      "UPDATE users SET skeleton = s.skeleton FROM unnest($1::bigint[], $2::text[]) AS s (id, skeleton) WHERE users.id = s.id",
      [rows.map((row) => row.id), rows.map((row) => usernameSkeleton(row.username))],
    );
    last = Number(rows.at(-1)!.id);
  }
}
