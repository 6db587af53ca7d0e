import { createHash, randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { hash } from "@node-rs/argon2";
import Database from "better-sqlite3";
import { ARGON2_OPTIONS } from "../../src/domain/passwords.ts";
import { createToken, cryptoRandom, hashToken } from "../../src/domain/secrets.ts";

/** Columns the seeders fill; any other NOT NULL column without a default means the schema moved on. */
const FILLED = ["id", "username", "password_hash", "mail_hash", "state", "token_hash", "ip", "created_at", "expires_at", "verified_at"];

const INSERT_USER = `INSERT INTO users (username, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at, verified_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;

function checkSchema(db: Database.Database): void {
  const columns = db.prepare("PRAGMA table_info(users)").all() as { name: string; notnull: number; dflt_value: unknown; pk: number }[];
  if (columns.length === 0) throw new Error("the database has no users table: run gatehouse once on it first (it migrates)");
  const names = new Set(columns.map((c) => c.name));
  for (const needed of FILLED) if (!names.has(needed)) throw new Error(`users.${needed} is gone from the schema: update bench/lib/seed.ts`);
  for (const column of columns) {
    if (column.notnull && column.dflt_value === null && column.pk === 0 && !FILLED.includes(column.name)) {
      throw new Error(`users.${column.name} is NOT NULL without a default: update bench/lib/seed.ts to fill it`);
    }
  }
}

/**
 * Opens the file for one bulk write, with the server stopped: no fsync per row, a large page
 * cache, a rollback journal instead of a WAL the size of the database; WAL is set back after.
 */
function openForBulk(file: string): Database.Database {
  const db = new Database(file);
  db.pragma("journal_mode = DELETE");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -1000000");
  db.pragma("temp_store = MEMORY");
  checkSchema(db);
  return db;
}

function closeAfterBulk(db: Database.Database): void {
  db.pragma("journal_mode = WAL");
  db.close();
}

function ipFor(prefix: number, i: number): string {
  return `10.${prefix}.${(i >> 8) & 255}.${i & 255}`;
}

/** A real hash with the configured parameters, so every seeded row has the length and shape of a real one. */
function samplePasswordHash(): Promise<string> {
  return hash("seeded account password", ARGON2_OPTIONS);
}

export interface SeedReport {
  accounts: number;
  pending: number;
  seconds: number;
  databaseBytes: number;
}

const DAY_MS = 86_400_000;

/**
 * Active accounts (unique username and mail hash, verified in the past year, token forgotten as
 * the sweeper leaves them) and pending registrations that expire after `pendingTtlSeconds`, in one
 * transaction through one prepared statement.
 */
export async function seedPopulation(file: string, counts: { accounts: number; pending: number }, pendingTtlSeconds: number): Promise<SeedReport> {
  const started = performance.now();
  const passwordHash = await samplePasswordHash();
  const salt = randomBytes(8).toString("hex");
  const mailHash = (kind: string, i: number) => createHash("sha256").update(`${salt}:${kind}:${i}`).digest("hex");
  const now = Date.now();
  const db = openForBulk(file);
  const insert = db.prepare(INSERT_USER);
  db.transaction(() => {
    const accountStep = (365 * DAY_MS) / Math.max(1, counts.accounts);
    for (let i = 0; i < counts.accounts; i++) {
      const createdAt = Math.floor(now - 365 * DAY_MS + i * accountStep);
      insert.run(`seed${String(i).padStart(7, "0")}`, passwordHash, mailHash("account", i), "active", null, null, createdAt, null, createdAt + 60_000);
    }
    // Created over the last 12 hours, so all of them are still pending for the whole run.
    const pendingStep = (DAY_MS / 2) / Math.max(1, counts.pending);
    for (let i = 0; i < counts.pending; i++) {
      const createdAt = Math.floor(now - DAY_MS / 2 + i * pendingStep);
      const tokenHash = hashToken(createToken(cryptoRandom));
      insert.run(
        `seedp${String(i).padStart(7, "0")}`,
        passwordHash,
        mailHash("pending", i),
        "pending",
        tokenHash,
        ipFor(200 + (i >> 16), i),
        createdAt,
        createdAt + pendingTtlSeconds * 1000,
        null,
      );
    }
  }).immediate();
  db.pragma("wal_checkpoint(TRUNCATE)");
  closeAfterBulk(db);
  return {
    accounts: counts.accounts,
    pending: counts.pending,
    seconds: (performance.now() - started) / 1000,
    databaseBytes: statSync(file).size,
  };
}

/**
 * Pending registrations whose tokens the benchmark knows, stored as gatehouse stores them (the
 * token's SHA-256): what a website would hold after as many accepted registrations.
 */
export async function seedVerifyTokens(file: string, count: number, label: string, pendingTtlSeconds: number): Promise<string[]> {
  const passwordHash = await samplePasswordHash();
  const now = Date.now();
  const tokens: string[] = [];
  const db = openForBulk(file);
  const insert = db.prepare(INSERT_USER);
  db.transaction(() => {
    for (let i = 0; i < count; i++) {
      const token = createToken(cryptoRandom);
      tokens.push(token);
      insert.run(
        `verify${label}${i}`,
        passwordHash,
        createHash("sha256").update(`${label}:${i}:${token}`).digest("hex"),
        "pending",
        hashToken(token),
        ipFor(100, i),
        now,
        now + pendingTtlSeconds * 1000,
        null,
      );
    }
  }).immediate();
  closeAfterBulk(db);
  return tokens;
}
