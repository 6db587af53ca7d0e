import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** The SQLite database and its WAL and shared-memory files, as they are on disk right now. */
export function sqliteFiles(dir: string, name = "gatehouse.db"): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const suffix of ["", "-wal", "-shm"]) {
    const file = join(dir, `${name}${suffix}`);
    if (existsSync(file)) files.set(file, readFileSync(file));
  }
  return files;
}

/** Whether any of the files holds `text` as UTF-8: the control that the scan reads real rows. */
export function anyHolds(files: Map<string, Buffer>, text: string): boolean {
  return [...files.values()].some((bytes) => bytes.includes(Buffer.from(text, "utf8")));
}

/** Fails naming the file and the secret when any of them holds a secret in UTF-8, Latin-1 or UTF-16. */
export function assertNoneInClear(files: Map<string, Buffer>, secrets: Record<string, string>): void {
  assert.ok(files.size > 0, "the database files exist");
  for (const [file, bytes] of files) {
    for (const [what, value] of Object.entries(secrets)) {
      for (const encoding of ["utf8", "latin1", "utf16le"] as const) {
        assert.equal(bytes.indexOf(Buffer.from(value, encoding)), -1, `${file} holds the ${what} in the clear (${encoding})`);
      }
    }
  }
}
