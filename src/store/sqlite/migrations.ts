/**
 * Versioned schema for SQLite; `PRAGMA user_version` records how far a file has come.
 * Append new steps, never edit old ones.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );

  -- Pending registrations and accounts share one table so that a username or a mail hash
  -- is unique across both by constraint, not by a check before the insert.
  CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    mail_hash TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    token_hash TEXT UNIQUE,
    ip TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    verified_at INTEGER
  );
  CREATE INDEX users_pending_expiry ON users (expires_at) WHERE state = 'pending';
  CREATE INDEX users_verified ON users (verified_at) WHERE token_hash IS NOT NULL AND state = 'active';

  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mail', 'event')),
    user_id INTEGER,
    payload TEXT,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    done_at INTEGER
  );
  CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';
  CREATE INDEX outbox_user ON outbox (user_id);
  `,
];
