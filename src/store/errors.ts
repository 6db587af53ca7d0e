/**
 * Whether an error says the store's disk is full: SQLite's SQLITE_FULL, a file write's ENOSPC, or
 * PostgreSQL's disk_full (SQLSTATE 53100). Such a write can succeed once space is freed, so it is a
 * 503 with Retry-After, not a 500.
 */
export function isStorageFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "SQLITE_FULL" || code === "ENOSPC" || code === "53100";
}
