import cluster, { type Worker } from "node:cluster";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { LimiterBacking, LimiterStore } from "./domain/limiter.ts";

// The rate limits of `serve --workers N` count in the primary's memory, as rate-limiter-flexible's
// RateLimiterCluster does, but each worker sends what its requests asked for during one turn of
// its event loop as one message, and gets one message back: the IPC write and the wake-up of the
// other process cost far more than the count itself (every bad auth_token takes a point).

const CHANNEL = "gatehouse:limits";

type Operation = "consume" | "reward" | "get" | "delete";
interface LimiterOptions {
  keyPrefix: string;
  points: number;
  duration: number;
}
/** A worker's batch: limiters it made since its last batch, then the operations, in order. */
interface Batch {
  channel: typeof CHANNEL;
  id: number;
  limiters: LimiterOptions[];
  ops: [keyPrefix: string, op: Operation, key: string, points: number][];
}
type Counted = [remaining: number, msBeforeNext: number, consumed: number, first: boolean];
/** The primary's answer to a batch, one result per operation: resolved (1) or rejected (0). */
interface Answer {
  channel: typeof CHANNEL;
  id: number;
  results: [ok: 0 | 1, value: Counted | boolean | null | string][];
}

function isBatch(msg: unknown): msg is Batch {
  return typeof msg === "object" && msg !== null && (msg as { channel?: unknown }).channel === CHANNEL && Array.isArray((msg as Batch).ops);
}

function isAnswer(msg: unknown): msg is Answer {
  return typeof msg === "object" && msg !== null && (msg as { channel?: unknown }).channel === CHANNEL && Array.isArray((msg as Answer).results);
}

function toWire(value: unknown): Counted | boolean | null | string {
  if (value instanceof RateLimiterRes) return [value.remainingPoints, value.msBeforeNext, value.consumedPoints, value.isFirstInDuration];
  if (value === null || typeof value === "boolean") return value;
  return value instanceof Error ? value.message : String(value);
}

function fromWire(value: Counted | boolean | null | string): unknown {
  if (Array.isArray(value)) return new RateLimiterRes(value[0], value[1], value[2], value[3]);
  return typeof value === "string" ? new Error(value) : value;
}

/**
 * In the primary: keeps one in-memory limiter per key prefix for every worker, made with the
 * first options a worker sent for it, and answers each batch with one message.
 */
export function serveClusterLimits(): void {
  const limiters = new Map<string, RateLimiterMemory>();
  cluster.on("message", (worker: Worker, msg: unknown) => {
    if (!isBatch(msg)) return;
    for (const options of msg.limiters) {
      if (!limiters.has(options.keyPrefix)) limiters.set(options.keyPrefix, new RateLimiterMemory(options));
    }
    const pending = msg.ops.map(([keyPrefix, op, key, points]) => {
      const limiter = limiters.get(keyPrefix);
      if (!limiter) return Promise.reject(new Error(`no limiter ${keyPrefix} in the primary`));
      switch (op) {
        case "consume":
          return limiter.consume(key, points);
        case "reward":
          return limiter.reward(key, points);
        case "get":
          return limiter.get(key);
        case "delete":
          return limiter.delete(key);
      }
    });
    void Promise.allSettled(pending).then((settled) => {
      const results = settled.map((s): Answer["results"][number] => (s.status === "fulfilled" ? [1, toWire(s.value)] : [0, toWire(s.reason)]));
      // A worker that died meanwhile has no channel left to answer on.
      if (worker.isConnected()) worker.send({ channel: CHANNEL, id: msg.id, results } satisfies Answer);
    });
  });
}

interface Waiting {
  resolve(value: unknown): void;
  reject(reason: unknown): void;
}

/** In a worker: queues operations and sends them to the primary once per event-loop turn. */
class ClusterLimitsClient {
  #nextId = 1;
  #limiters: LimiterOptions[] = [];
  #ops: Batch["ops"] = [];
  #waiting: Waiting[] = [];
  #scheduled = false;
  readonly #inFlight = new Map<number, { waiting: Waiting[]; timer: NodeJS.Timeout }>();

  constructor(private readonly timeoutMs: number) {
    process.on("message", (msg: unknown) => {
      if (isAnswer(msg)) this.#answer(msg);
    });
  }

  register(options: LimiterOptions): void {
    this.#limiters.push(options);
    this.#schedule();
  }

  run(keyPrefix: string, op: Operation, key: string, points: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#ops.push([keyPrefix, op, key, points]);
      this.#waiting.push({ resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const id = this.#nextId++;
    const batch: Batch = { channel: CHANNEL, id, limiters: this.#limiters, ops: this.#ops };
    const waiting = this.#waiting;
    this.#limiters = [];
    this.#ops = [];
    this.#waiting = [];
    if (waiting.length > 0) {
      const timer = setTimeout(() => {
        this.#inFlight.delete(id);
        for (const w of waiting) w.reject(new Error("no answer from the cluster primary's rate limits in time"));
      }, this.timeoutMs);
      this.#inFlight.set(id, { waiting, timer });
    }
    process.send?.(batch);
  }

  #answer(msg: Answer): void {
    const entry = this.#inFlight.get(msg.id);
    if (!entry) return;
    this.#inFlight.delete(msg.id);
    clearTimeout(entry.timer);
    entry.waiting.forEach((w, i) => {
      const [ok, value] = msg.results[i] ?? [0, "no result from the cluster primary"];
      if (ok === 1) w.resolve(fromWire(value));
      else w.reject(fromWire(value));
    });
  }
}

class ClusterLimiter implements LimiterStore {
  constructor(
    private readonly client: ClusterLimitsClient,
    private readonly options: LimiterOptions,
  ) {
    client.register(options);
  }

  get points(): number {
    return this.options.points;
  }

  consume(key: string | number, points = 1): Promise<RateLimiterRes> {
    return this.client.run(this.options.keyPrefix, "consume", String(key), points) as Promise<RateLimiterRes>;
  }

  reward(key: string | number, points = 1): Promise<RateLimiterRes> {
    return this.client.run(this.options.keyPrefix, "reward", String(key), points) as Promise<RateLimiterRes>;
  }

  get(key: string | number): Promise<RateLimiterRes | null> {
    return this.client.run(this.options.keyPrefix, "get", String(key), 0) as Promise<RateLimiterRes | null>;
  }

  delete(key: string | number): Promise<boolean> {
    return this.client.run(this.options.keyPrefix, "delete", String(key), 0) as Promise<boolean>;
  }
}

let client: ClusterLimitsClient | null = null;

/** Counts in the cluster primary's memory, so every worker of `serve --workers N` sees the same counts. */
export const clusterBacking: LimiterBacking = (options) => {
  client ??= new ClusterLimitsClient(3000);
  return new ClusterLimiter(client, { keyPrefix: options.keyPrefix, points: options.points, duration: options.duration });
};
