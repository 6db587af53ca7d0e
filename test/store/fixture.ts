import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { usernameSkeleton } from "../../src/domain/username.ts";
import { connectDb, type Q } from "../../src/store/db.ts";
import { connectStore, openStore } from "../../src/store/open.ts";
import type { AccountSummary, NewAccount, NewInvite, NewOutboxItem, NewPending, OutboxItem, Store } from "../../src/store/store.ts";

// STYLE.md "Boundaries": both backends pass one shared contract suite, split by feature as the
// store is (test/store/<feature>.test.ts). Every test gets an empty database of its own (a
// temporary SQLite file, or a fresh PostgreSQL schema) and a fixed clock.

export interface StoreFixture {
  /** A store on the fixture's database; migrated unless asked otherwise. */
  store: Store;
  /** Another instance on the same database, as a second process would have; not migrated by this call. */
  connect(): Promise<Store>;
  /** Closes every instance and removes the database. */
  dispose(): Promise<void>;
  /** Runs `work` on a handle of its own to the fixture's database, for what no Store method shows (an erased column). */
  inspect<T>(work: (q: Q) => Promise<T>): Promise<T>;
}

async function inspectAt<T>(url: string, work: (q: Q) => Promise<T>): Promise<T> {
  const db = await connectDb(url);
  try {
    return await work(db.q);
  } finally {
    await db.close();
  }
}

export type MakeStore = (options?: { migrated?: boolean }) => Promise<StoreFixture>;

/** Registers a test whose body runs against a store on an empty database of its own. */
export type It = (title: string, body: (store: Store, fixture: StoreFixture) => Promise<void>) => void;

export const T0 = Date.UTC(2026, 0, 1);
export const MINUTE = 60_000;
export const DAY = 24 * 60 * MINUTE;

let counter = 0;

export function pending(fields: Partial<NewPending> = {}): NewPending {
  counter += 1;
  const username = fields.username ?? `user${counter}`;
  return {
    username,
    skeleton: usernameSkeleton(username),
    passwordHash: `argon2-hash-${counter}`,
    mailHash: `mail-hash-${counter}`,
    tokenHash: `token-hash-${counter}`,
    ip: `198.51.100.${counter % 250}`,
    createdAt: T0,
    expiresAt: T0 + DAY,
    ...fields,
  };
}

export function account(username: string, passwordHash = "h"): NewAccount {
  return { username, skeleton: usernameSkeleton(username), passwordHash };
}

export function mail(payload = "sealed-mail", createdAt = T0): NewOutboxItem {
  return { kind: "mail", payload, createdAt };
}

export function event(payload = "sealed-event", createdAt = T0): NewOutboxItem {
  return { kind: "event", payload, createdAt };
}

export function job(target: string, payload = `sealed-job-${target}`, createdAt = T0): NewOutboxItem {
  return { kind: "provision", target, payload, createdAt };
}

export function invite(fields: Partial<NewInvite> = {}): NewInvite {
  counter += 1;
  return {
    handle: `handle-${counter}`,
    tokenHash: `invite-token-${counter}`,
    issuerKind: "user",
    issuerId: "7",
    issuerName: "alice",
    username: null,
    uses: 1,
    createdAt: T0,
    expiresAt: T0 + 7 * DAY,
    ...fields,
  };
}

export async function insertOk(store: Store, p: NewPending, outbox: NewOutboxItem[] = []): Promise<number> {
  const result = await store.insertPending(p, outbox);
  if (!result.ok) assert.fail(`insertPending of ${p.username} was refused: ${result.conflict}`);
  return result.id;
}

/** Registers and verifies, so the name and mail hash belong to an account. */
export async function createAccount(store: Store, fields: Partial<NewPending> = {}, at = T0): Promise<AccountSummary> {
  const p = pending({ createdAt: at, expiresAt: at + DAY, ...fields });
  await insertOk(store, p);
  const result = await store.activatePending(p.tokenHash, at, () => []);
  if (result?.outcome !== "created") assert.fail(`activation of ${p.username} did not create an account`);
  return result.account;
}

/** Everything due at `now`, leased for a minute. */
export async function claimAll(store: Store, now = T0): Promise<OutboxItem[]> {
  return store.claimOutbox(now, now + MINUTE, 1000);
}

/** A temporary SQLite file per fixture. */
const sqlite: MakeStore = async ({ migrated = true } = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-store-"));
  const url = `sqlite:${join(dir, "gatehouse.db")}`;
  const opened: Store[] = [];
  opened.push(migrated ? await openStore(url) : await connectStore(url));
  return {
    store: opened[0]!,
    async connect() {
      const other = await connectStore(url);
      opened.push(other);
      return other;
    },
    async dispose() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
    inspect: (work) => inspectAt(url, work),
  };
};

const pgUrl = process.env["GATEHOUSE_TEST_PG"];
const admin = pgUrl ? new pg.Pool({ connectionString: pgUrl, max: 2 }) : undefined;
if (admin) after(() => admin.end());
const run = randomBytes(4).toString("hex");
let schemas = 0;

/**
 * A fresh PostgreSQL schema of its own (other test runs share the server), reached through
 * search_path; null when no server is named.
 */
export async function pgSchema(): Promise<{ url: string; connect(): Promise<pg.Client>; drop(): Promise<void> } | null> {
  if (!pgUrl || !admin) return null;
  const pool = admin;
  schemas += 1;
  const schema = `gh_test_${run}_${schemas}`;
  await pool.query(`CREATE SCHEMA ${schema}`);
  const options = encodeURIComponent(`-c search_path=${schema}`);
  const url = `${pgUrl}${pgUrl.includes("?") ? "&" : "?"}options=${options}`;
  return {
    url,
    async connect() {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    },
    drop: async () => void (await pool.query(`DROP SCHEMA ${schema} CASCADE`)),
  };
}

/** A fresh schema per fixture. */
const postgres: MakeStore = async ({ migrated = true } = {}) => {
  const schema = (await pgSchema())!;
  const opened: Store[] = [];
  try {
    opened.push(migrated ? await openStore(schema.url) : await connectStore(schema.url));
  } catch (err) {
    await schema.drop();
    throw err;
  }
  return {
    store: opened[0]!,
    async connect() {
      const other = await connectStore(schema.url);
      opened.push(other);
      return other;
    },
    async dispose() {
      for (const s of opened) await s.close();
      await schema.drop();
    },
    inspect: (work) => inspectAt(schema.url, work),
  };
};

/**
 * Defines one feature's part of the contract, run on SQLite always and on PostgreSQL when
 * GATEHOUSE_TEST_PG names a server.
 */
export function storeContract(feature: string, define: (it: It, makeStore: MakeStore) => void): void {
  const backends: [string, MakeStore][] = [["sqlite", sqlite]];
  if (pgUrl) backends.push(["postgres", postgres]);
  for (const [name, makeStore] of backends) {
    describe(`${name} store: ${feature}`, () => {
      const it: It = (title, body) => {
        test(title, async () => {
          const fixture = await makeStore();
          try {
            await body(fixture.store, fixture);
          } finally {
            await fixture.dispose();
          }
        });
      };
      define(it, makeStore);
    });
  }
  if (!pgUrl) test(`postgres store: ${feature}`, { skip: "GATEHOUSE_TEST_PG not set" }, () => {});
}
