import { AppError } from "../errors.ts";
import { isStorageFull } from "../store/errors.ts";
import type { Store } from "../store/store.ts";

/** How long a client is asked to wait when the store is full: freeing space takes an operator. */
export const STORAGE_FULL_RETRY_SECONDS = 60;

export function storageFullError(): AppError {
  return new AppError("STORAGE_FULL", "the store is full; try again later", { retryAfter: STORAGE_FULL_RETRY_SECONDS });
}

/**
 * Remembers that a write found the store full. Until a write succeeds again, work that would end in
 * a write first asks the store with a small probe write, so a full disk is answered 503 before an
 * Argon2 hash is spent on a request that cannot be stored. When all is well it costs nothing.
 */
export class WriteHealth {
  #full = false;

  /** Called with whatever a write threw; only a full store is remembered. */
  noteFailure(err: unknown): void {
    if (isStorageFull(err)) this.#full = true;
  }

  noteWritable(): void {
    this.#full = false;
  }

  /** Throws STORAGE_FULL when the store was found full and still is. */
  async checkWritable(store: Pick<Store, "probeWrite">, now: number): Promise<void> {
    if (!this.#full) return;
    try {
      await store.probeWrite(now);
    } catch (err) {
      if (isStorageFull(err)) throw storageFullError();
      throw err;
    }
    this.#full = false;
  }
}
