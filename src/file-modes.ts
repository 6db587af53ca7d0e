import { chmodSync, closeSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname } from "node:path";

/**
 * The store and the `dir:` mail directory hold what another local user must not read (mail
 * hashes with the key to test guesses, sealed payloads, verify links). Directories are 0700 and
 * files 0600; a looser one found at start-up is tightened when the process may (it owns it, or is
 * root), else start-up is refused: running on files others can read would break the promise quietly.
 */

export class FileModeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FileModeError";
  }
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/**
 * Makes `path` private to its owner when group or others have any access to it; returns a sentence
 * saying what was tightened, or null when nothing was (or it does not exist).
 */
function tighten(path: string, kind: "directory" | "file"): string | null {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  if ((mode & 0o077) === 0) return null;
  // A sticky or world-writable directory is shared (like /tmp): making it 0700 would break everyone else.
  if (kind === "directory" && (mode & 0o1000 || mode & 0o002)) {
    throw new FileModeError(`${path} is a shared directory (mode ${octal(mode)}); give gatehouse's files a directory of their own`);
  }
  const wanted = kind === "directory" ? 0o700 : 0o600;
  try {
    chmodSync(path, wanted);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new FileModeError(
      `${kind} ${path} is open to other users (mode ${octal(mode)}) and cannot be made ${octal(wanted)} (${code}); ` +
        `run gatehouse as its owner or run: chmod ${octal(wanted).slice(1)} ${path}`,
    );
  }
  return `${kind} ${path} was open to other users (mode ${octal(mode)}); made it ${octal(wanted)}`;
}

/** Creates `dir` 0700 if missing, else tightens it; returns what was tightened. */
export function preparePrivateDir(dir: string): string[] {
  if (process.platform === "win32") return [];
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notice = tighten(dir, "directory");
  return notice ? [notice] : [];
}

/**
 * Readies the directory and files of a SQLite database: the directory 0700, the database created
 * 0600 before SQLite opens it (SQLite gives its -wal and -shm files the database file's mode, so
 * those made later are 0600 too), and existing looser files tightened. Returns what was tightened.
 */
export function prepareSqliteFiles(file: string): string[] {
  if (process.platform === "win32") return [];
  const notices = preparePrivateDir(dirname(file));
  for (const suffix of ["", "-wal", "-shm", "-journal"]) {
    const notice = tighten(file + suffix, "file");
    if (notice) notices.push(notice);
  }
  try {
    closeSync(openSync(file, "wx", 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  return notices;
}
