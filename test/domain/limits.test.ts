import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { loadavg } from "node:os";
import { AUTH_FAILURE_POINTS, LOGIN_ADDRESS_FAILURE_POINTS, LOGIN_FAILURE_POINTS, type LimiterBacking } from "../../src/domain/limiter.ts";
import { hashQueueStats } from "../../src/domain/passwords.ts";
import { createRedisBacking } from "../../src/limiter-backing.ts";
import { createLogger } from "../../src/log.ts";
import {
  encode,
  metricSample,
  postRegistrationJson,
  registration,
  withHarness,
  type Harness,
} from "../helpers/harness.ts";
import { client, identityCookie, issueInvite, PASSWORD } from "../helpers/invites.ts";
import { waitFor, withServiceDir } from "../helpers/service.ts";

// Issue 10, items 4–7 and 9: rate limits nobody can turn against someone else, IPv6 keyed by
// network, a bounded hashing queue, the last proxy hop, and slow clients kept out of the error log.

const REDIS = process.env["GATEHOUSE_TEST_REDIS"];
type Overrides = Parameters<typeof withHarness>[0];

/**
 * One test per limiter backing: this process's memory, and Redis (what several instances share).
 * Each Redis run counts under prefixes of its own, so parallel runs on one Redis never meet.
 */
function limiterTest(name: string, overrides: Overrides, body: (h: Harness, t: TestContext) => Promise<void>): void {
  test(`${name} (memory)`, (t) => withHarness(overrides, (h) => body(h, t)));
  if (!REDIS) {
    test(`${name} (Redis)`, { skip: "GATEHOUSE_TEST_REDIS not set" }, () => {});
    return;
  }
  test(`${name} (Redis)`, async (t) => {
    const redis = await createRedisBacking(REDIS, createLogger("silent"));
    try {
      await waitFor(() => redis.client.status === "ready", { what: "Redis to be ready" });
      const run = randomUUID();
      const backing: LimiterBacking = (options) => redis.backing({ ...options, keyPrefix: `${options.keyPrefix}:${run}` });
      await withHarness(overrides, (h) => body(h, t), { limiterBacking: backing });
    } finally {
      await redis.close();
    }
  });
}

/** A login as a client behind the trusted proxy at `address` (the proxy's X-Forwarded-For). */
function loginFrom(h: Harness, address: string, name: string, password: string) {
  return client(h).post("/api/auth/login").set("X-Forwarded-For", address).set("Accept", "application/json").send({ name, password });
}

async function account(h: Harness, name: string): Promise<void> {
  const { id } = await issueInvite(h);
  const res = await client(h).post(`/api/invite/${id}`).set("Accept", "application/json").send({ name, password: PASSWORD });
  assert.equal(res.status, 204, res.text);
}

/** Argon2 tasks started in this process so far. */
function argon2Runs(): number {
  return hashQueueStats().started;
}

const PROXIED = { trustProxy: true } as const;

// ---------------------------------------------------------------------------------------------
describe("item 4: failed logins count per (address, name) and per address, never per name", () => {
  limiterTest("ten wrong passwords for carol from two addresses do not refuse her right password from a third", PROXIED, async (h) => {
    await account(h, "carol");
    for (let i = 0; i < LOGIN_FAILURE_POINTS; i++) {
      assert.equal((await loginFrom(h, "198.51.100.1", "carol", `wrong ${i}`)).status, 401);
      assert.equal((await loginFrom(h, "198.51.100.2", "carol", `wrong ${i}`)).status, 401);
    }
    assert.equal((await loginFrom(h, "198.51.100.1", "carol", "still guessing")).status, 429, "the guessing address is limited");
    const ok = await loginFrom(h, "203.0.113.3", "carol", PASSWORD);
    assert.equal(ok.status, 204, ok.text);
    assert.ok(identityCookie(ok), "carol got her session");
  });

  limiterTest("an address over the limit for one name gets 429 for it without an Argon2 verify, and may still log in as another", PROXIED, async (h) => {
    await account(h, "carol");
    await account(h, "dave");
    for (let i = 0; i < LOGIN_FAILURE_POINTS; i++) assert.equal((await loginFrom(h, "198.51.100.1", "carol", `wrong ${i}`)).status, 401);
    const before = argon2Runs();
    const limited = await loginFrom(h, "198.51.100.1", "carol", PASSWORD);
    assert.equal(limited.status, 429, limited.text);
    assert.match(String(limited.headers["retry-after"]), /^[1-9]\d*$/);
    assert.equal(identityCookie(limited), null);
    assert.equal(argon2Runs(), before, "no Argon2 work for a blocked key");
    assert.equal((await loginFrom(h, "198.51.100.1", "dave", PASSWORD)).status, 204);
  });

  limiterTest("a successful login clears that address's failures for the name", PROXIED, async (h) => {
    await account(h, "erin");
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < LOGIN_FAILURE_POINTS - 1; i++) assert.equal((await loginFrom(h, "198.51.100.9", "erin", `typo ${i}`)).status, 401);
      assert.equal((await loginFrom(h, "198.51.100.9", "erin", PASSWORD)).status, 204, `round ${round + 1}`);
    }
  });

  limiterTest(`${LOGIN_ADDRESS_FAILURE_POINTS} failures across names block the address (a shared NAT included), and no other`, PROXIED, async (h) => {
    await account(h, "carol");
    for (let batch = 0; batch < LOGIN_ADDRESS_FAILURE_POINTS / 10; batch++) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => loginFrom(h, "198.51.100.20", `spray${batch}x${i}`, "password1")));
      assert.deepEqual(answers.map((r) => r.status), Array(10).fill(401));
    }
    const before = argon2Runs();
    const limited = await loginFrom(h, "198.51.100.20", "carol", PASSWORD);
    assert.equal(limited.status, 429, "documented: the spraying address is blocked as a whole, right password or not");
    assert.equal(argon2Runs(), before, "no Argon2 work for a blocked address");
    assert.equal((await loginFrom(h, "198.51.100.21", "carol", PASSWORD)).status, 204, "the next address is not");
  });
});

// ---------------------------------------------------------------------------------------------
describe("item 5: the bad auth_token limit refuses only wrong tokens", () => {
  limiterTest("a peer over the bad auth_token limit still gets through with a right token", {}, async (h) => {
    for (let i = 0; i < AUTH_FAILURE_POINTS; i++) {
      assert.equal((await postRegistrationJson(h, registration({ auth_token: `wrong-${i}` }))).status, 401, `attempt ${i + 1}`);
    }
    const limited = await postRegistrationJson(h, registration({ auth_token: "wrong-again" }));
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error, "TOO_MANY_ATTEMPTS");
    assert.match(String(limited.headers["retry-after"]), /^[1-9]\d*$/);
    const website = await postRegistrationJson(h, registration());
    assert.equal(website.status, 200, website.text);
    assert.equal((await postRegistrationJson(h, registration({ auth_token: "wrong-still" }))).status, 429);
  });
});

// ---------------------------------------------------------------------------------------------
describe("item 6: IPv6 addresses are limited by their /64 (register.ipv6Prefix)", () => {
  limiterTest("a one-hour throttle refuses 2001:db8::2 after 2001:db8::1, but not another /64 or another IPv4 address", { register: { throttleSeconds: 3600 } }, async (h) => {
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8::1" }))).status, 200);
    const second = await postRegistrationJson(h, registration({ ip: "2001:db8::2" }));
    assert.equal(second.status, 503, second.text);
    assert.equal(second.body.error, "THROTTLED");
    assert.match(String(second.headers["retry-after"]), /^\d+$/);
    assert.ok(Number(second.headers["retry-after"]) > 3500, `Retry-After ${second.headers["retry-after"]}`);
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8::abcd:1234:5678:9abc" }))).status, 503, "anywhere in the /64");
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8:0:1::1" }))).status, 200, "the next /64 is someone else");
    assert.equal((await postRegistrationJson(h, registration({ ip: "198.51.100.77" }))).status, 200);
    assert.equal((await postRegistrationJson(h, registration({ ip: "198.51.100.78" }))).status, 200, "IPv4 stays per address");
    const pending = await h.ctx.store.listPending(h.clock.now());
    assert.ok(pending.some((p) => p.ip === "2001:db8::1"), "the pending registration keeps the whole address");
  });

  limiterTest("register.ipv6Prefix 48 throttles a whole /48", { register: { throttleSeconds: 3600, ipv6Prefix: 48 } }, async (h) => {
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8:aa::1" }))).status, 200);
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8:aa:ff::1" }))).status, 503);
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8:ab::1" }))).status, 200);
  });

  limiterTest("register.ipv6Prefix 128 throttles single addresses", { register: { throttleSeconds: 3600, ipv6Prefix: 128 } }, async (h) => {
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8::1" }))).status, 200);
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8::2" }))).status, 200);
    assert.equal((await postRegistrationJson(h, registration({ ip: "2001:db8::2" }))).status, 503);
  });

  limiterTest("bad auth_tokens from many addresses of one /64 share one limit", PROXIED, async (h) => {
    for (let i = 0; i < AUTH_FAILURE_POINTS; i++) {
      const res = await postRegistrationJson(h, registration({ auth_token: "wrong" })).set("X-Forwarded-For", `2001:db8:5::${i + 1}`);
      assert.equal(res.status, 401, `attempt ${i + 1}`);
    }
    const next = await postRegistrationJson(h, registration({ auth_token: "wrong" })).set("X-Forwarded-For", "2001:db8:5::ff");
    assert.equal(next.status, 429);
    const elsewhere = await postRegistrationJson(h, registration({ auth_token: "wrong" })).set("X-Forwarded-For", "2001:db8:6::1");
    assert.equal(elsewhere.status, 401, "another /64 has its own count");
  });

  limiterTest("400 failed logins for carol from 40 addresses of one /64 cost ten Argon2 verifies, and her own login stays quick", PROXIED, async (h, t) => {
    await account(h, "carol");
    const before = argon2Runs();
    const statuses: number[] = [];
    for (let i = 0; i < 400; i++) {
      statuses.push((await loginFrom(h, `2001:db8:7::${(i % 40) + 1}`, "carol", `guess ${i}`)).status);
    }
    assert.equal(statuses.filter((s) => s === 401).length, LOGIN_FAILURE_POINTS);
    assert.equal(statuses.filter((s) => s === 429).length, 400 - LOGIN_FAILURE_POINTS);
    assert.equal(argon2Runs() - before, LOGIN_FAILURE_POINTS, "only the attempts under the limit were hashed");
    const started = performance.now();
    const ok = await loginFrom(h, "2001:db8:8::1", "carol", PASSWORD);
    const ms = performance.now() - started;
    t.diagnostic(`her login after the 400 took ${ms.toFixed(0)} ms`);
    assert.equal(ok.status, 204);
    assert.ok(ms < 1000, `her login took ${ms.toFixed(0)} ms`);
  });
});

// ---------------------------------------------------------------------------------------------
describe("item 6: the Argon2 queue is bounded", () => {
  /** Sends `count` requests at once; resolves to each one's status, Retry-After and time taken. */
  async function flood(count: number, send: (i: number) => Promise<Response>) {
    return Promise.all(Array.from({ length: count }, async (_, i) => {
      const started = performance.now();
      const res = await send(i);
      await res.arrayBuffer();
      return { status: res.status, retryAfter: res.headers.get("retry-after"), ms: performance.now() - started };
    }));
  }

  test("a flood of logins gets 503 with Retry-After past the queue's capacity, and a login after it is quick", async (t) => {
    await withServiceDir(PROXIED, async ({ start }) => {
      const { service } = await start();
      const capacity = hashQueueStats().capacity;
      // How long a full queue takes depends on how busy the machine is; that it never grows past
      // its capacity does not.
      let deepest = 0;
      const sampler = setInterval(() => (deepest = Math.max(deepest, hashQueueStats().depth)), 2);
      const answers = await flood(capacity * 8, (i) =>
        fetch(`${service.url}/api/auth/login`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-forwarded-for": `10.${i >> 8}.${i & 255}.1` },
          body: JSON.stringify({ name: `nobody${i}`, password: "guess" }),
        }));
      clearInterval(sampler);
      const busy = answers.filter((a) => a.status === 503);
      assert.deepEqual([...new Set(answers.map((a) => a.status))].sort(), [401, 503], "only 401 and 503, never a 500");
      assert.ok(busy.length >= capacity, `${busy.length} of ${answers.length} were 503`);
      assert.ok(busy.every((a) => a.retryAfter === "1"), "every 503 says Retry-After: 1");
      assert.ok(deepest > 0 && deepest <= capacity, `the queue held at most ${deepest} of ${capacity}`);
      const slowest = Math.max(...answers.map((a) => a.ms));

      const after = await flood(1, () =>
        fetch(`${service.url}/api/auth/login`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-forwarded-for": "192.0.2.1" },
          body: JSON.stringify({ name: "nobody", password: "guess" }),
        }));
      assert.equal(after[0]!.status, 401);
      assert.ok(after[0]!.ms < 1000, `a login after the flood took ${after[0]!.ms.toFixed(0)} ms`);
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.equal(metricSample(metrics, 'gatehouse_logins_total{outcome="busy"}'), busy.length);
      t.diagnostic(`${answers.length} logins, queue capacity ${capacity}: ${busy.length} answered 503; queue at most ${deepest} deep; slowest answer ${slowest.toFixed(0)} ms (slowest 503: ${Math.max(...busy.map((a) => a.ms)).toFixed(0)} ms, load ${loadavg()[0]!.toFixed(1)}); one after the flood ${after[0]!.ms.toFixed(0)} ms`);
    });
  });

  test("a flood of registrations: 503s store nothing and give their throttle point back", async () => {
    await withServiceDir({ register: { throttleSeconds: 3600 } }, async ({ start }) => {
      const { service } = await start();
      const count = hashQueueStats().capacity * 6;
      const fields = Array.from({ length: count }, (_, i) => registration({ ip: `10.9.${i >> 8}.${i & 255}` }));
      const post = (i: number) =>
        fetch(`${service.url}/register_account/`, { method: "POST", headers: { "content-type": "application/encoded" }, body: encode(fields[i]) });
      const answers = await flood(count, post);
      assert.deepEqual([...new Set(answers.map((a) => a.status))].sort(), [200, 503], "only 200 and 503");
      const busy = answers.flatMap((a, i) => (a.status === 503 ? [i] : []));
      assert.ok(busy.length > 0, "some were refused for a full queue");
      assert.ok(busy.every((i) => answers[i]!.retryAfter === "1"));
      const pending = await service.ctx.store.listPending(Date.now());
      assert.equal(pending.length, count - busy.length, "a 503 stored nothing");
      const again = await flood(1, () => post(busy[0]!));
      assert.equal(again[0]!.status, 200, "the refused registration was not counted by the throttle");
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("item 7: behind a trusted proxy, the last hop's X-Forwarded-* value counts", () => {
  test("X-Forwarded-Proto: https, http is plain HTTP; http, https is HTTPS", async () => {
    await withHarness({ trustProxy: true, register: { secure: true } }, async (h) => {
      const spoofed = await postRegistrationJson(h, registration()).set("X-Forwarded-Proto", "https, http");
      assert.equal(spoofed.status, 403, spoofed.text);
      assert.equal(spoofed.body.error, "HTTPS_REQUIRED");
      const proxied = await postRegistrationJson(h, registration()).set("X-Forwarded-Proto", "http, https");
      assert.equal(proxied.status, 200, proxied.text);
    });
  });

  test("X-Forwarded-For: only the last address is the client, so rotating the first ones does not escape the auth_token limit", async () => {
    await withHarness({ trustProxy: true }, async (h) => {
      for (let i = 0; i <= AUTH_FAILURE_POINTS; i++) {
        const res = await postRegistrationJson(h, registration({ auth_token: "wrong" })).set("X-Forwarded-For", `203.0.113.${i + 1}, 198.51.100.7`);
        assert.equal(res.status, i < AUTH_FAILURE_POINTS ? 401 : 429, `attempt ${i + 1}`);
      }
      const refused = h.logs.lines.filter((l) => l["msg"] === "request refused");
      assert.ok(refused.length > 0 && refused.every((l) => l["peer"] === "198.51.100.7"), "the peer logged is the last hop");
    });
  });

  test("X-Forwarded-Host: the last value is the host, so a client cannot name its own origin as ours", async () => {
    await withHarness({ trustProxy: true }, async (h) => {
      await account(h, "frank");
      const res = await loginFrom(h, "198.51.100.1", "frank", PASSWORD);
      const cookie = identityCookie(res)!.pair;
      const evil = await client(h)
        .post("/api/auth/logout")
        .set("Cookie", cookie)
        .set("Origin", "http://evil.example")
        .set("X-Forwarded-Host", "evil.example, gatehouse.test");
      assert.equal(evil.status, 403, evil.text);
      const own = await client(h).post("/api/auth/logout").set("Cookie", cookie).set("Origin", "http://gatehouse.test").set("X-Forwarded-Host", "evil.example, gatehouse.test");
      assert.equal(own.status, 204);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("item 9: a client that does not finish its request is a debug line and a metric", () => {
  /** Opens a raw connection and starts a registration whose body never arrives in full (or, `chunked`, is not HTTP). */
  function startBody(url: string, { trickle = false, chunked = false }: { trickle?: boolean; chunked?: boolean }) {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
    socket.on("error", () => {});
    const head = "POST /register_account/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/encoded\r\n";
    socket.write(chunked ? `${head}Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\nnot-a-size\r\n` : `${head}Content-Length: 1000\r\n\r\nab`);
    const timer = trickle ? setInterval(() => socket.write("a"), 100) : null;
    const closed = new Promise<string>((resolve) =>
      socket.on("close", () => {
        if (timer) clearInterval(timer);
        resolve(answer);
      }));
    return { socket, closed };
  }

  test("a trickled body is cut off with 408, and no warn or error line is written", async () => {
    await withServiceDir({}, async ({ start }) => {
      const { service, logs } = await start({ requestTimeoutMs: 1000, logLevel: "debug" });
      const started = Date.now();
      const answer = await startBody(service.url, { trickle: true }).closed;
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.ok(Date.now() - started < 5000, `cut off after ${Date.now() - started} ms`);
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      await waitFor(() => logs.lines.some((l) => l["msg"] === "client did not finish the request"), { what: "the debug line" });
      assert.equal(metricSample(metrics, 'gatehouse_client_errors_total{reason="timeout"}'), 1, metrics.split("\n").filter((l) => l.includes("client_errors")).join("\n"));
      const loud = logs.lines.filter((l) => Number(l["level"]) >= 40);
      assert.deepEqual(loud, [], "no warn or error lines");
    });
  });

  test("a client that hangs up in the middle of its body is counted as aborted, not logged as an error", async () => {
    await withServiceDir({}, async ({ start }) => {
      const { service, logs } = await start({ logLevel: "debug" });
      const { socket, closed } = startBody(service.url, {});
      await new Promise((resolve) => setTimeout(resolve, 100));
      socket.end();
      await closed;
      await waitFor(() => logs.lines.some((l) => l["msg"] === "client did not finish the request"), { what: "the debug line" });
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.equal(metricSample(metrics, 'gatehouse_client_errors_total{reason="aborted"}'), 1, logs.text());
      assert.deepEqual(logs.lines.filter((l) => Number(l["level"]) >= 40), []);
    });
  });

  test("a body that is not valid HTTP chunking is counted as a parse fault, not logged as an error", async () => {
    await withServiceDir({}, async ({ start }) => {
      const { service, logs } = await start({ logLevel: "debug" });
      const answer = await startBody(service.url, { chunked: true }).closed;
      assert.match(answer, /^HTTP\/1\.1 400 /);
      await waitFor(() => logs.lines.some((l) => l["msg"] === "client did not finish the request"), { what: "the debug line" });
      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.equal(metricSample(metrics, 'gatehouse_client_errors_total{reason="parse"}'), 1, logs.text());
      assert.deepEqual(logs.lines.filter((l) => Number(l["level"]) >= 40), []);
    });
  });
});
