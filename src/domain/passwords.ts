import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

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
 * One hashing thread per core, each at a lower CPU priority than the event loop (see
 * hash-worker.js). Started on first use, not at import; idle threads do not keep the process alive.
 */
class HashPool {
  #slots: Slot[] = [];
  #nextId = 0;

  run(task: Task): Promise<unknown> {
    if (this.#slots.length === 0) this.#start();
    const slot = this.#slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.ref();
      slot.worker.postMessage({ id, ...task });
    });
  }

  #start(): void {
    for (let i = 0; i < availableParallelism(); i++) {
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

export async function hashPassword(password: string): Promise<string> {
  return (await pool.run({ op: "hash", password, options: ARGON2_OPTIONS })) as string;
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return (await pool.run({ op: "verify", hash: passwordHash, password })) === true;
  } catch {
    return false;
  }
}

/** Password length counts characters as a person sees them, not UTF-16 units. */
export function passwordLength(password: string): number {
  return [...password].length;
}
