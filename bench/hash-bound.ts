/**
 * The hash-bound limit for accepted registrations: how many password hashes per second this
 * machine computes with gatehouse's Argon2 parameters, through gatehouse's own `hashPassword` (so
 * on the same pool of threads the server hashes on, whatever that pool is), with as many hashes
 * in flight as the benchmark has connections. No HTTP at all. Prints one JSON line.
 *
 *   node --import tsx bench/hash-bound.ts --concurrency 10 --duration 10 --warmup 2
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { ARGON2_OPTIONS, hashPassword } from "../src/domain/passwords.ts";

const { values } = parseArgs({
  options: {
    concurrency: { type: "string", default: "10" },
    duration: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
  },
});
const concurrency = Number(values.concurrency);
const durationMs = Number(values.duration) * 1000;
const warmupMs = Number(values.warmup) * 1000;

const started = performance.now();
const measureFrom = started + warmupMs;
const measureUntil = measureFrom + durationMs;
let counted = 0;
let serial = 0;

// Hashes that end inside the window count, as autocannon counts the responses that arrive in its window.
async function hashLoop(): Promise<void> {
  while (performance.now() < measureUntil) {
    await hashPassword(`bench-password-${serial++}`);
    const now = performance.now();
    if (now >= measureFrom && now <= measureUntil) counted++;
  }
}

await Promise.all(Array.from({ length: concurrency }, () => hashLoop()));
process.stdout.write(
  JSON.stringify({
    hashesPerSecond: counted / (durationMs / 1000),
    hashes: counted,
    seconds: durationMs / 1000,
    concurrency,
    cores: availableParallelism(),
    uvThreadPoolSize: process.env["UV_THREADPOOL_SIZE"] ?? "4 (libuv default)",
    argon2: ARGON2_OPTIONS,
  }) + "\n",
);
