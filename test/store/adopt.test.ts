import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { openStore } from "../../src/store/open.ts";
import type pg from "pg";
import { usernameSkeleton } from "../../src/domain/username.ts";
import type { Store } from "../../src/store/store.ts";
import { POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS } from "../fixtures/legacy-migrations.ts";
import { DAY, T0, event, mail, pending, pgSchema, account } from "./fixture.ts";

// Databases made by gatehouse before the one migration list (c6099d5 and earlier), at every
// version that code could leave them, open with the new store, keep their rows and take new ones.

type OldRow = { sql: string; params: unknown[] };

/** The first old version (SQLite user_version, PostgreSQL schema_migrations) with users.skeleton. */
const SKELETON_SINCE = { sqlite: 5, postgres: 3 };

/** Rows as the old code wrote them; `full` when the schema had keys, invites and sessions yet. */
function oldRows(full: boolean): OldRow[] {
  const rows = [
    { sql: "INSERT INTO meta (key, value) VALUES ('secret', 'old-secret')", params: [] },
    {
      sql: `INSERT INTO users (id, username, password_hash, mail_hash, state, created_at, verified_at) VALUES (7, 'olga', 'olga-hash', 'olga-mail', 'active', ?, ?)`,
      params: [T0 - DAY, T0 - DAY],
    },
    {
      sql: `INSERT INTO users (id, username, password_hash, mail_hash, state, token_hash, ip, created_at, expires_at) VALUES (8, 'pia', 'pia-hash', 'pia-mail', 'pending', 'pia-token', '192.0.2.8', ?, ?)`,
      params: [T0, T0 + DAY],
    },
    {
      sql: "INSERT INTO outbox (kind, user_id, payload, next_attempt_at, created_at) VALUES ('mail', 8, 'pia-sealed-mail', ?, ?)",
      params: [T0, T0],
    },
  ];
  if (!full) return rows;
  return [
    ...rows,
    { sql: "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ('k1', 'bot', 'k1-hash', ?)", params: [T0] },
    {
      sql: `INSERT INTO invites (handle, token_hash, issuer_kind, issuer_id, issuer_name, uses_total, uses_left, created_at, expires_at) VALUES ('inv', 'inv-token', 'user', '7', 'olga', 2, 2, ?, ?)`,
      params: [T0, T0 + 7 * DAY],
    },
    { sql: "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('olga-session', 7, ?, ?)", params: [T0, T0 + DAY] },
  ];
}

/** Once the old code had users.skeleton, every insert wrote it: the rows get theirs as they would have. */
function withSkeletons(rows: OldRow[], had: boolean): OldRow[] {
  if (!had) return rows;
  const skeletons = ["olga", "pia"].map((name) => ({
    sql: "UPDATE users SET skeleton = ? WHERE username = ?",
    params: [usernameSkeleton(name), name],
  }));
  return [...rows, ...skeletons];
}

/** A SQLite file as SqliteStore.migrate left it at `version` (each step, then user_version), with `rows`. */
function oldSqlite(file: string, version: number, rows: OldRow[]): void {
  const old = new Database(file);
  try {
    for (let i = 0; i < version; i++) {
      const step = SQLITE_MIGRATIONS[i]!;
      if (typeof step === "string") old.exec(step);
      else step(old);
      old.pragma(`user_version = ${i + 1}`);
    }
    for (const row of rows) old.prepare(row.sql).run(...row.params);
  } finally {
    old.close();
  }
}

/** A schema as PostgresStore.migrate left it at `version`, on one connection with the schema first in the search path, with `rows`. */
async function oldPostgres(old: pg.Client, version: number, rows: OldRow[]): Promise<void> {
  try {
    await old.query("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)");
    for (let i = 0; i < version; i++) {
      const step = POSTGRES_MIGRATIONS[i]!;
      if (typeof step === "string") await old.query(step);
      else await step(old);
      await old.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)", [i + 1]);
    }
    for (const row of rows) {
      let n = 0;
      await old.query(row.sql.replace(/\?/g, () => `$${++n}`), row.params);
    }
    // BIGSERIAL sequences move on as the old code's inserts would have moved them.
    await old.query("SELECT setval('users_id_seq', (SELECT COALESCE(MAX(id), 1) FROM users))");
  } finally {
    await old.end();
  }
}

/** What must hold of an adopted database: the old rows are there, and new writes work. */
async function checkAdopted(store: Store, full: boolean): Promise<void> {
  await store.migrate();
  // Stored names hold their look-alikes, whether the old code wrote the skeleton or 006 filled it.
  assert.equal(await store.findSkeletonHolder(usernameSkeleton("оlga"), T0), "account");
  assert.equal(await store.findSkeletonHolder(usernameSkeleton("pia"), T0), "pending");
  assert.equal(await store.loadSecret("new-secret"), "old-secret");
  assert.deepEqual(await store.listAccounts(), [{ id: 7, username: "olga", createdAt: T0 - DAY, hasMail: true, invitedBy: null }]);
  assert.deepEqual(await store.findLogin("olga"), { id: 7, username: "olga", passwordHash: "olga-hash" });
  assert.deepEqual(await store.findByTokenHash("pia-token", T0), { state: "pending", username: "pia", expiresAt: T0 + DAY });
  assert.deepEqual(
    (await store.listPending(T0)).map((p) => [p.id, p.username, p.ip, p.mailStatus]),
    [[8, "pia", "192.0.2.8", "queued"]],
  );
  assert.equal(await store.isMailHashHeld("olga-mail", T0), true);
  if (full) {
    assert.deepEqual(await store.findSession("olga-session", T0), { userId: 7, username: "olga", expiresAt: T0 + DAY });
    assert.equal((await store.findApiKey("k1"))?.secretHash, "k1-hash");
    assert.equal((await store.findInviteByHandle("inv"))?.usesLeft, 2);
  }

  // New writes, on every table.
  const fresh = pending({ username: "quinn", mailHash: "quinn-mail" });
  const quinn = await store.insertPending(fresh, [mail("quinn-mail")]);
  assert.equal(quinn.ok, true);
  assert.deepEqual(await store.insertPending(pending({ username: "olga" }), []), { ok: false, conflict: "username" });
  assert.deepEqual(await store.insertPending(pending({ mailHash: "pia-mail" }), []), { ok: false, conflict: "mail" });
  const pia = await store.activatePending("pia-token", T0 + 1, () => [event("pia-created")]);
  assert.equal(pia?.outcome, "created");
  await store.insertInvite({ ...invitedFields(), handle: "new-inv", tokenHash: "new-inv-token" });
  const accepted = await store.acceptInvite("new-inv-token", T0 + 2, account("rita"), () => []);
  if (!accepted.ok) assert.fail(`accept refused: ${accepted.reason}`);
  await store.insertSession("rita-session", accepted.account.id, T0, T0 + DAY);
  assert.equal((await store.findSession("rita-session", T0))?.username, "rita");
  assert.deepEqual(
    (await store.claimOutbox(T0 + 2, T0 + DAY, 10)).map((i) => i.payload),
    ["pia-sealed-mail", "quinn-mail", "pia-created"],
  );
  // Provisioning's columns (007): the sealed secret is handed over on activation, a job names its target.
  const tess = pending({ username: "tess", mailHash: "tess-mail", sealedSecret: "tess-sealed" });
  assert.equal((await store.insertPending(tess, [])).ok, true);
  let handed: string | null = null;
  await store.activatePending(tess.tokenHash, T0 + 2, (_, secret) => {
    handed = secret;
    return [{ kind: "provision", target: "xmpp", payload: "tess-job", createdAt: T0 + 2 }];
  });
  assert.equal(handed, "tess-sealed");
  assert.deepEqual(
    (await store.claimOutbox(T0 + 2, T0 + DAY, 10)).map((i) => [i.kind, i.target, i.payload]),
    [["provision", "xmpp", "tess-job"]],
  );
  assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["olga", "pia", "rita", "tess"]);

  // An account id is not handed out again (SQLite files before step 4 get AUTOINCREMENT now),
  // and deleting an account still ends its sessions.
  assert.equal(await store.deleteAccount("rita"), true);
  assert.equal(await store.findSession("rita-session", T0), null);
  await store.insertInvite({ ...invitedFields(), handle: "inv3", tokenHash: "inv3-token" });
  const next = await store.acceptInvite("inv3-token", T0 + 3, account("sam"), () => []);
  if (!next.ok) assert.fail(`accept refused: ${next.reason}`);
  assert.ok(next.account.id > accepted.account.id, `id ${next.account.id} after deleted ${accepted.account.id}`);
  if (full) {
    assert.equal(await store.deleteAccount("olga"), true);
    assert.equal(await store.findSession("olga-session", T0), null, "the old session went with its account");
  }
}

function invitedFields() {
  return { issuerKind: "admin" as const, issuerId: "admin", issuerName: "admin", username: null, uses: 1, createdAt: T0, expiresAt: T0 + DAY };
}

for (let version = 1; version <= SQLITE_MIGRATIONS.length; version++) {
  test(`a SQLite file the old code left at user_version ${version} opens, keeps its rows and takes new ones`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "gatehouse-adopt-"));
    const file = join(dir, "old.db");
    try {
      oldSqlite(file, version, withSkeletons(oldRows(version >= 2), version >= SKELETON_SINCE.sqlite));

      const store = await openStore(`sqlite:${file}`);
      try {
        await checkAdopted(store, version >= 2);
      } finally {
        await store.close();
      }
      const check = new Database(file, { readonly: true });
      try {
        const users = check.prepare("SELECT sql FROM sqlite_master WHERE name = 'users'").get() as { sql: string };
        assert.match(users.sql, /AUTOINCREMENT/i);
        assert.equal(check.pragma("user_version", { simple: true }), version, "the old bookkeeping is left as it was");
      } finally {
        check.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

for (let version = 1; version <= POSTGRES_MIGRATIONS.length; version++) {
  test(`a PostgreSQL schema the old code left at schema_migrations version ${version} opens, keeps its rows and takes new ones`, async (t) => {
    const schema = await pgSchema();
    if (!schema) return t.skip("GATEHOUSE_TEST_PG not set");
    try {
      await oldPostgres(await schema.connect(), version, withSkeletons(oldRows(true), version >= SKELETON_SINCE.postgres));
      const store = await openStore(schema.url);
      try {
        await checkAdopted(store, true);
      } finally {
        await store.close();
      }
    } finally {
      await schema.drop();
    }
  });
}

/** Names stored before look-alike checks: one plain, one with a Cyrillic letter. */
const BEFORE_SKELETONS: OldRow[] = [
  {
    sql: "INSERT INTO users (id, username, password_hash, mail_hash, state, created_at, verified_at) VALUES (7, 'modern', 'h', 'm7', 'active', 1, 1)",
    params: [],
  },
  {
    sql: "INSERT INTO users (id, username, password_hash, mail_hash, state, token_hash, created_at, expires_at) VALUES (8, 'аlice', 'h', 'm8', 'pending', 't8', ?, ?)",
    params: [T0, T0 + DAY],
  },
];

/** After the upgrade, the stored names hold their look-alikes; migrating again changes nothing. */
async function checkSkeletonsFilled(store: Store): Promise<void> {
  await store.migrate();
  await store.migrate();
  assert.equal(await store.findSkeletonHolder(usernameSkeleton("rnodern"), T0), "account", "modern and rnodern look alike");
  assert.equal(await store.findSkeletonHolder(usernameSkeleton("alice"), T0), "pending", "Cyrillic а and Latin a look alike");
  assert.equal(await store.findSkeletonHolder(usernameSkeleton("alice"), T0 + DAY), null, "not once it has expired");
  await store.insertInvite({ ...invitedFields(), handle: "after", tokenHash: "after-token" });
  assert.equal((await store.acceptInvite("after-token", T0, account("after"), () => [])).ok, true);
  assert.equal(await store.findSkeletonHolder("after", T0), "account");
}

test("migrating a SQLite file from before look-alike checks gives every stored name its skeleton", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-adopt-"));
  const file = join(dir, "old.db");
  try {
    oldSqlite(file, SKELETON_SINCE.sqlite - 1, BEFORE_SKELETONS);
    const store = await openStore(`sqlite:${file}`);
    try {
      await checkSkeletonsFilled(store);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("migrating a PostgreSQL schema from before look-alike checks gives every stored name its skeleton", async (t) => {
  const schema = await pgSchema();
  if (!schema) return t.skip("GATEHOUSE_TEST_PG not set");
  try {
    await oldPostgres(await schema.connect(), SKELETON_SINCE.postgres - 1, BEFORE_SKELETONS);
    const store = await openStore(schema.url);
    try {
      await checkSkeletonsFilled(store);
    } finally {
      await store.close();
    }
  } finally {
    await schema.drop();
  }
});
