import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SQLITE_MIGRATIONS } from "../src/store/sqlite/migrations.ts";
import { SqliteStore } from "../src/store/sqlite/sqlite-store.ts";

test("a database made by an older version migrates with its accounts and sessions intact", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-migrate-"));
  const file = join(dir, "old.db");
  try {
    // The schema as the first three steps left it, with an account that has a session.
    const old = new Database(file);
    for (const step of SQLITE_MIGRATIONS.slice(0, 3)) old.exec(step as string);
    old.pragma("user_version = 3");
    old.prepare("INSERT INTO users (id, username, password_hash, mail_hash, state, created_at, verified_at) VALUES (7, 'olga', 'h', 'm', 'active', 1, 1)").run();
    old.prepare("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ('s', 7, 1, 9999999999999)").run();
    old.close();

    const store = new SqliteStore(file);
    await store.migrate();
    await store.migrate();
    try {
      assert.deepEqual((await store.listAccounts()).map((a) => [a.id, a.username]), [[7, "olga"]]);
      assert.deepEqual(await store.findSession("s", 2), { userId: 7, username: "olga", expiresAt: 9999999999999 });
      assert.equal(await store.deleteAccount("olga"), true);
      assert.equal(await store.findSession("s", 2), null, "deleting the account still ends its sessions");
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
