import type Database from "better-sqlite3";
import { usernameSkeleton } from "../../domain/username.ts";

/** SQL, or code for a step whose values SQL cannot compute; run inside the migration's transaction. */
export type SqliteMigration = string | ((db: Database.Database) => void);

/**
 * Versioned schema for SQLite; `PRAGMA user_version` records how far a file has come.
 * Append new steps, never edit old ones.
 */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
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
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );

  CREATE TABLE invites (
    id INTEGER PRIMARY KEY,
    handle TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    issuer_kind TEXT NOT NULL CHECK (issuer_kind IN ('user', 'key', 'admin')),
    issuer_id TEXT NOT NULL,
    issuer_name TEXT NOT NULL,
    username TEXT,
    uses_total INTEGER NOT NULL CHECK (uses_total > 0),
    uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
  );

  CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX sessions_user ON sessions (user_id);
  CREATE INDEX sessions_expiry ON sessions (expires_at);

  ALTER TABLE users ADD COLUMN invited_by TEXT;
  ALTER TABLE users ADD COLUMN invite_id INTEGER;
  `,
  `
  -- claimOutbox looks up an account's earlier queued events to keep them in order.
  CREATE INDEX outbox_event_order ON outbox (user_id, id) WHERE state = 'queued' AND kind = 'event';
  `,
  `
  -- Account ids go out in events: AUTOINCREMENT keeps SQLite from handing a deleted account's
  -- id to the next one. Rebuilt with foreign keys off (see SqliteStore.migrate).
  CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    mail_hash TEXT UNIQUE,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
    token_hash TEXT UNIQUE,
    ip TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    verified_at INTEGER,
    invited_by TEXT,
    invite_id INTEGER
  );
  INSERT INTO users_new (id, username, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at, verified_at, invited_by, invite_id)
    SELECT id, username, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at, verified_at, invited_by, invite_id FROM users;
  DROP TABLE users;
  ALTER TABLE users_new RENAME TO users;
  CREATE INDEX users_pending_expiry ON users (expires_at) WHERE state = 'pending';
  CREATE INDEX users_verified ON users (verified_at) WHERE token_hash IS NOT NULL AND state = 'active';
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
  -- SQLite cannot change a CHECK constraint, so the outbox is rebuilt.
  CREATE TABLE outbox_new (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mail', 'event', 'provision')),
    user_id INTEGER,
    target TEXT,
    payload TEXT,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    done_at INTEGER
  );
  INSERT INTO outbox_new (id, kind, user_id, payload, state, attempts, next_attempt_at, lease_until, last_error, created_at, done_at)
    SELECT id, kind, user_id, payload, state, attempts, next_attempt_at, lease_until, last_error, created_at, done_at FROM outbox;
  DROP TABLE outbox;
  ALTER TABLE outbox_new RENAME TO outbox;
  CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 'queued';
  CREATE INDEX outbox_user ON outbox (user_id);
  CREATE INDEX outbox_event_order ON outbox (user_id, id) WHERE state = 'queued' AND kind = 'event';
  CREATE INDEX outbox_provision_open ON outbox (user_id) WHERE kind = 'provision' AND state <> 'sent';
  ALTER TABLE users ADD COLUMN sealed_secret TEXT;
  `,
];

/** Gives every row stored before the skeleton column its skeleton, a thousand rows at a time. */
function fillSkeletons(db: Database.Database): void {
  const next = db.prepare("SELECT id, username FROM users WHERE id > ? ORDER BY id LIMIT 1000");
  const set = db.prepare("UPDATE users SET skeleton = ? WHERE id = ?");
  for (let last = -1; ; ) {
    const rows = next.all(last) as { id: number; username: string }[];
    if (rows.length === 0) return;
    for (const row of rows) set.run(usernameSkeleton(row.username), row.id);
    last = rows.at(-1)!.id;
  }
}
