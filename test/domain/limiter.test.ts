import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { randomUUID } from "node:crypto";
import { createLimiters, createThrottle, memoryBacking } from "../../src/domain/limiter.ts";
import { createRedisBacking } from "../../src/limiter-backing.ts";
import { createLogger } from "../../src/log.ts";
import { LogCapture } from "../helpers/harness.ts";

const REDIS = process.env["GATEHOUSE_TEST_REDIS"];

test("the in-memory throttle allows one take per window and gives a point back", async () => {
  const throttle = createThrottle(60, memoryBacking)!;
  const key = randomUUID();
  assert.equal(await throttle.take(key), null);
  const wait = await throttle.take(key);
  assert.ok(wait !== null && wait > 0 && wait <= 60_000, "wait !== null && wait > 0 && wait <= 60_000");
  await throttle.giveBack(key);
  await throttle.giveBack(key);
  assert.equal(await throttle.take(key), null);
});

test("auth failures block a peer after the allowed number and not before", async () => {
  const { authFailures } = createLimiters(0);
  const peer = randomUUID();
  for (let i = 0; i < 9; i++) await authFailures.take(peer);
  assert.equal(await authFailures.blockedFor(peer), null);
  await authFailures.take(peer);
  assert.ok((await authFailures.blockedFor(peer)) !== null, "(await authFailures.blockedFor(peer)) !== null");
});

if (!REDIS) {
  test("Redis-backed limits", { skip: "GATEHOUSE_TEST_REDIS not set" }, () => {});
} else {
  test("two instances on one Redis share the throttle", async () => {
    const log = createLogger("silent");
    const a = await createRedisBacking(REDIS, log);
    const b = await createRedisBacking(REDIS, log);
    try {
      const ta = createThrottle(30, a.backing)!;
      const tb = createThrottle(30, b.backing)!;
      const ip = `203.0.113.${Math.floor(Math.random() * 250)}-${randomUUID()}`;
      await waitReady(a.client);
      await waitReady(b.client);
      assert.equal(await ta.take(ip), null);
      const wait = await tb.take(ip);
      assert.ok(wait !== null && wait > 25_000, "the second instance sees the first one's registration");
      const other = `${ip}-refused-later`;
      assert.equal(await ta.take(other), null);
      await ta.giveBack(other);
      assert.equal(await tb.take(other), null, "a point given back on one instance frees the key on both");
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("a Redis outage falls back to memory, is logged, and recovery is logged", async () => {
    const port = await freePort();
    let server = startRedis(port);
    const logs = new LogCapture();
    const redis = await createRedisBacking(`redis://127.0.0.1:${port}`, createLogger("info", logs));
    try {
      await waitReady(redis.client);
      const limiters = createLimiters(30, redis.backing);
      assert.equal(await limiters.throttle!.take("198.51.100.1"), null);

      await stopRedis(server);
      await until(() => logs.text().includes("redis unreachable"), 10_000);
      // Still answering: the insurance limiter counts in memory while Redis is away.
      assert.equal(await limiters.throttle!.take("198.51.100.2"), null);
      assert.ok((await limiters.throttle!.take("198.51.100.2")) !== null, "(await limiters.throttle!.take(\"198.51.100.2\")) !== null");

      server = startRedis(port);
      await until(() => logs.text().includes("redis is back"), 15_000);
      await waitReady(redis.client);
      assert.equal(await limiters.throttle!.take("198.51.100.3"), null);
      assert.ok((await limiters.throttle!.take("198.51.100.3")) !== null, "(await limiters.throttle!.take(\"198.51.100.3\")) !== null");
    } finally {
      await redis.close();
      await stopRedis(server);
    }
  });
}

function startRedis(port: number): ChildProcess {
  return spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitReady(client: { status: string }): Promise<void> {
  await until(() => client.status === "ready", 10_000);
}
