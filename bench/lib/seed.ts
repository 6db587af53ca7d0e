import { createHash, randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { hash } from "@node-rs/argon2";
import { ARGON2_OPTIONS } from "../../src/domain/passwords.ts";
import { createToken, cryptoRandom, hashToken } from "../../src/domain/secrets.ts";
import { usernameSkeleton } from "../../src/domain/username.ts";
import { importUsers, type ImportedUser } from "../../src/store/accounts.ts";
import { connectDb } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";

/**
 * Stores `users` in the SQLite file through the store's own bulk load (one transaction, a batch
 * of rows per statement), with the server stopped; the schema is migrated first if need be.
 */
async function load(file: string, users: Iterable<ImportedUser>): Promise<void> {
  const db = await connectDb(`sqlite:${file}`);
  try {
    await migrate(db);
    await importUsers(db, users);
  } finally {
    // The last connection to close checkpoints the WAL into the file and removes it.
    await db.close();
  }
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
  function* users(): Generator<ImportedUser> {
    const accountStep = (365 * DAY_MS) / Math.max(1, counts.accounts);
    for (let i = 0; i < counts.accounts; i++) {
      const createdAt = Math.floor(now - 365 * DAY_MS + i * accountStep);
      yield {
        username: `seed${String(i).padStart(7, "0")}`,
        skeleton: usernameSkeleton(`seed${String(i).padStart(7, "0")}`),
        passwordHash,
        mailHash: mailHash("account", i),
        state: "active",
        tokenHash: null,
        ip: null,
        createdAt,
        expiresAt: null,
        verifiedAt: createdAt + 60_000,
      };
    }
    // Created over the last 12 hours, so all of them are still pending for the whole run.
    const pendingStep = (DAY_MS / 2) / Math.max(1, counts.pending);
    for (let i = 0; i < counts.pending; i++) {
      const createdAt = Math.floor(now - DAY_MS / 2 + i * pendingStep);
      yield {
        username: `seedp${String(i).padStart(7, "0")}`,
        skeleton: usernameSkeleton(`seedp${String(i).padStart(7, "0")}`),
        passwordHash,
        mailHash: mailHash("pending", i),
        state: "pending",
        tokenHash: hashToken(createToken(cryptoRandom)),
        ip: ipFor(200 + (i >> 16), i),
        createdAt,
        expiresAt: createdAt + pendingTtlSeconds * 1000,
        verifiedAt: null,
      };
    }
  }
  await load(file, users());
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
  const users: ImportedUser[] = [];
  for (let i = 0; i < count; i++) {
    const token = createToken(cryptoRandom);
    tokens.push(token);
    users.push({
      username: `verify${label}${i}`,
      skeleton: usernameSkeleton(`verify${label}${i}`),
      passwordHash,
      mailHash: createHash("sha256").update(`${label}:${i}:${token}`).digest("hex"),
      state: "pending",
      tokenHash: hashToken(token),
      ip: ipFor(100, i),
      createdAt: now,
      expiresAt: now + pendingTtlSeconds * 1000,
      verifiedAt: null,
    });
  }
  await load(file, users);
  return tokens;
}
