import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { openStore } from "../../src/store/open.ts";
import { invite } from "./fixture.ts";

// SQLite only: a busy connection's WAL is checkpointed by a thread of its own (dialect/sqlite.ts' Checkpointer).

/** The handles in the database file alone: what has been checkpointed out of the WAL. */
function checkpointedHandles(file: string, dir: string): string[] {
  const copy = join(dir, "file-only.db");
  copyFileSync(file, copy);
  const db = new Database(copy, { readonly: true });
  try {
    // Until a first checkpoint the file may not even have the tables the migrations made.
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'invites'").get()) return [];
    return (db.prepare("SELECT handle FROM invites").all() as { handle: string }[]).map((row) => row.handle);
  } finally {
    db.close();
  }
}

test("a busy SQLite store's WAL is checkpointed off the event loop; a quiet one's is left to its commits", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-checkpoint-"));
  const file = join(dir, "gatehouse.db");
  const store = await openStore(`sqlite:${file}`);
  try {
    const first = invite();
    await store.insertInvite(first);
    await sleep(400);
    // A few pages in the WAL and no thread: the file has not got the invite.
    assert.deepEqual(checkpointedHandles(file, dir), []);

    // Each commit adds a few pages: the WAL file reaches SQLite's checkpoint threshold of 1000.
    for (let i = 0; i < 600; i++) await store.insertInvite(invite());
    const later = invite();
    await store.insertInvite(later);
    let found: string[] = [];
    for (let waited = 0; waited < 5000 && !found.includes(later.handle); waited += 100) {
      await sleep(100);
      found = checkpointedHandles(file, dir);
    }
    assert.ok(found.includes(first.handle) && found.includes(later.handle), "the file has the invites made before and after the thread started");
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
