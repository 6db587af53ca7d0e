import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis } from "rate-limiter-flexible";
import type { LimiterBacking } from "./domain/limiter.ts";

export interface RedisBacking {
  backing: LimiterBacking;
  client: Redis;
  close(): Promise<void>;
}

/**
 * Counts in Redis, shared by every instance. When Redis is not ready, each limiter falls back to
 * an in-memory insurance limiter: limits get per-process for a while, registrations keep working.
 */
export async function createRedisBacking(url: string, log: Logger): Promise<RedisBacking> {
  // Loaded only when `redis` is configured: a single instance never loads ioredis.
  const { Redis } = await import("ioredis");
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  let down = false;
  client.on("error", (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ reason: err.message }, "redis unreachable: rate limits fall back to per-process memory");
  });
  client.on("ready", () => {
    if (!down) return;
    down = false;
    log.info("redis is back: rate limits are shared again");
  });
  const backing: LimiterBacking = (options) =>
    new RateLimiterRedis({
      ...options,
      storeClient: client,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory(options),
    });
  return {
    backing,
    client,
    async close() {
      client.disconnect();
    },
  };
}
