import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { AppError } from "../errors.ts";

/** OWASP's minimum for Argon2id: m=19 MiB, t=2, p=1. */
export const ARGON2_OPTIONS = {
  algorithm: 2, // Argon2id; the package's const enum cannot be imported under isolated modules
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
} as const;

type Task =
  | { op: "hash"; password: string; options: typeof ARGON2_OPTIONS }
  | { op: "verify"; hash: string; password: string };

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>;
}

/**
 * How many Argon2 tasks may be queued or running at once: 8 per hashing thread, and at least 32
 * so a small machine still takes an ordinary burst. One takes ~40 ms of a core, so a full queue
 * is well under a second of work: a request waits at most that long, and past it is answered 503
 * at once instead of queueing behind a flood.
 */
export const HASH_QUEUE_PER_THREAD = 8;
export const HASH_QUEUE_MIN = 32;
/** Seconds a request refused for a full queue is told to wait. */
const BUSY_RETRY_AFTER_SECONDS = 1;

/**
 * One hashing thread per core, each at a lower CPU priority than the event loop (see
 * hash-worker.js). Started on first use, not at import; idle threads do not keep the process alive.
 */
class HashPool {
  #slots: Slot[] = [];
  #nextId = 0;
  readonly threads = availableParallelism();
  readonly capacity = Math.max(HASH_QUEUE_MIN, this.threads * HASH_QUEUE_PER_THREAD);
  /** Argon2 tasks started since the process began. */
  started = 0;

  /** Tasks queued or running now. */
  get depth(): number {
    return this.#slots.reduce((sum, slot) => sum + slot.pending.size, 0);
  }

  /** Rejects with SERVER_BUSY (503) when the queue is full: bounded waiting, never an unbounded one. */
  run(task: Task): Promise<unknown> {
    if (this.depth >= this.capacity) {
      return Promise.reject(new AppError("SERVER_BUSY", "too many password checks at once; try again shortly", { retryAfter: BUSY_RETRY_AFTER_SECONDS }));
    }
    if (this.#slots.length === 0) this.#start();
    const slot = this.#slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.#nextId++;
    this.started++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, ...task });
    });
  }

  #start(): void {
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(new URL("./hash-worker.js", import.meta.url));
      const slot: Slot = { worker, pending: new Map() };
      worker.on("message", (msg: { id: number; result?: unknown; error?: string }) => {
        const waiting = slot.pending.get(msg.id);
        slot.pending.delete(msg.id);
        if (slot.pending.size === 0) worker.unref();
        if (!waiting) return;
        if (msg.error !== undefined) waiting.reject(new Error(msg.error));
        else waiting.resolve(msg.result);
      });
      worker.on("error", (err) => {
        for (const waiting of slot.pending.values()) waiting.reject(err);
        slot.pending.clear();
        this.#slots = this.#slots.filter((s) => s !== slot);
      });
      worker.unref();
      this.#slots.push(slot);
    }
  }
}

const pool = new HashPool();

/** The hashing queue as it stands, for metrics and tests. */
export function hashQueueStats(): { depth: number; capacity: number; started: number } {
  return { depth: pool.depth, capacity: pool.capacity, started: pool.started };
}

export async function hashPassword(password: string): Promise<string> {
  return (await pool.run({ op: "hash", password, options: ARGON2_OPTIONS })) as string;
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  const result = pool.run({ op: "verify", hash: passwordHash, password });
  // A full queue is an answer of its own (503); a hash the library cannot read only fails the check.
  return result.then((value) => value === true, (err: unknown) => {
    if (err instanceof AppError) throw err;
    return false;
  });
}

/** Password length counts characters as a person sees them, not UTF-16 units. */
export function passwordLength(password: string): number {
  return [...password].length;
}
