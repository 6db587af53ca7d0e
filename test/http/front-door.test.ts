import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import supertest from "supertest";
import { withoutFrontDoor } from "../../src/app.ts";
import { AUTH_TOKEN, createHarness, encode, type Harness } from "../helpers/harness.ts";

// Registrations are answered on Node's own request, before Koa (src/http/front-door.ts). Every kind
// of registration is sent here both ways, to one app with the front door and to one without it, in
// the same order: the status, headers, body, log lines and metrics must be the same.

const BASE = "/register_account/";

interface Call {
  label: string;
  path?: string;
  headers?: Record<string, string>;
  body: string | Buffer;
}

const fields = (over: Record<string, unknown> = {}) => ({
  username: "alice",
  password: "correct horse battery",
  ip: "198.51.100.7",
  mail: "alice@example.org",
  auth_token: AUTH_TOKEN,
  ...over,
});

const CALLS: Call[] = [
  { label: "accepted", body: encode(fields()) },
  { label: "accepted, the bare path and a query", path: `${BASE.slice(0, -1)}?x=1`, body: encode(fields({ username: "bob", mail: "bob@example.org", ip: "198.51.100.8" })) },
  { label: "accepted as JSON itself", headers: { "Content-Type": "application/json" }, body: JSON.stringify(fields({ username: "carol", mail: "carol@example.org", ip: "198.51.100.9", lang: "de" })) },
  { label: "name pending", body: encode(fields({ mail: "other@example.org", ip: "198.51.100.10" })) },
  { label: "mail taken", body: encode(fields({ username: "dave", ip: "198.51.100.11" })) },
  { label: "throttled", body: encode(fields({ username: "erin", mail: "erin@example.org" })) },
  { label: "blacklisted", body: encode(fields({ ip: "203.0.113.5" })) },
  { label: "blacklisted, JSON asked", headers: { Accept: "application/json" }, body: encode(fields({ ip: "203.0.113.5" })) },
  { label: "blacklisted, the browser's Accept", headers: { Accept: "text/html,application/xhtml+xml,*/*;q=0.8" }, body: encode(fields({ ip: "203.0.113.5" })) },
  { label: "filtered mail", body: encode(fields({ mail: "x@blocked.example" })) },
  { label: "reserved name", body: encode(fields({ username: "admin", ip: "198.51.100.12" })) },
  { label: "invalid name", body: encode(fields({ username: "a b", ip: "198.51.100.13" })) },
  { label: "short password", body: encode(fields({ username: "frank", password: "short", ip: "198.51.100.14" })) },
  { label: "malformed base64", body: "not*base64!" },
  { label: "raw JSON without its type", body: JSON.stringify(fields()) },
  { label: "not UTF-8", headers: { "Content-Type": "application/json" }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) },
  { label: "a field missing", body: encode({ username: "x" }) },
  { label: "ip not an address", body: encode(fields({ ip: "nope" })) },
  { label: "not an object", body: encode("[1,2]") },
  { label: "compressed", headers: { "Content-Encoding": "gzip" }, body: encode(fields()) },
  { label: "too large", body: "A".repeat(64 * 1024 + 4) },
  { label: "forwarded for (trustProxy off: the socket's address counts)", headers: { "X-Forwarded-For": "192.0.2.99" }, body: encode(fields({ auth_token: "wrong" })) },
  // Ten wrong tokens from one peer are answered 401, the next 429 with Retry-After.
  ...Array.from({ length: 11 }, (_, i) => ({ label: `bad auth_token ${i + 1}`, body: encode(fields({ auth_token: "wrong" })) })),
];

const OVERRIDES = {
  register: { throttleSeconds: 600, blacklist: ["203.0.113.0/24"], filteredMails: ["@blocked\\.example$"] },
};

/** What a client and an operator see of one answer; the request id differs by design, its presence does not. */
function seen(res: supertest.Response): Record<string, unknown> {
  const headers = { ...res.headers } as Record<string, string>;
  assert.match(headers["x-request-id"] ?? "", /^[0-9a-f-]{36}$/);
  delete headers["x-request-id"];
  delete headers["date"];
  // Limiters count in real time: a second may pass between the two requests.
  if (headers["retry-after"] !== undefined) headers["retry-after"] = String(Math.round(Number(headers["retry-after"]) / 10) * 10);
  const token = res.status === 200 ? res.text : null;
  if (token !== null) assert.match(token, /^[A-Za-z0-9_-]{20,}$/);
  return { status: res.status, headers, body: token === null ? res.text : "(a token)" };
}

/** Log lines without what differs from run to run (time, ids, durations, tokens). */
function lines(h: Harness): unknown[] {
  return h.logs.lines.map((line) => {
    const { time: _time, reqId, pid: _pid, ms: _ms, ...rest } = line as Record<string, unknown>;
    return { ...rest, reqId: typeof reqId === "string" ? "(an id)" : reqId };
  });
}

async function metricText(h: Harness, name: string): Promise<string> {
  return (await h.ctx.metrics.registry.getSingleMetricAsString(name)).trim();
}

async function both(overrides: Parameters<typeof createHarness>[0], run: (front: Harness, koa: Harness, koaHttp: supertest.Agent) => Promise<void>): Promise<void> {
  const front = await createHarness(overrides);
  const koa = await createHarness(overrides);
  try {
    withoutFrontDoor(koa.app);
    await run(front, koa, supertest.agent(koa.app.callback()));
  } finally {
    await front.close();
    await koa.close();
  }
}

function send(agent: supertest.Agent, call: Call): supertest.Test {
  let req = agent.post(call.path ?? BASE);
  req = req.set("Content-Type", "application/x-www-form-urlencoded");
  for (const [name, value] of Object.entries(call.headers ?? {})) req = req.set(name, value);
  return req.send(call.body);
}

test("every kind of registration gets the same answer, log lines and metrics through the front door as through Koa", async () => {
  await both(OVERRIDES, async (front, koa, koaHttp) => {
    // The two really are different ways in: Koa sees none of the front door's registrations.
    let reachedKoa = 0;
    front.app.middleware.unshift(async (_ctx, next) => {
      reachedKoa += 1;
      await next();
    });
    const frontHttp = supertest.agent(front.app.callback());
    for (const call of CALLS) {
      const a = await send(frontHttp, call);
      const b = await send(koaHttp, call);
      assert.deepEqual(seen(a), seen(b), call.label);
    }
    assert.deepEqual(lines(front), lines(koa));
    const codes = front.logs.lines.filter((l) => l["msg"] === "request refused").map((l) => l["code"]);
    for (const code of ["USERNAME_PENDING", "MAIL_TAKEN", "THROTTLED", "IP_BLACKLISTED", "MAIL_FILTERED", "USERNAME_RESERVED", "PASSWORD_TOO_SHORT", "MALFORMED_REQUEST", "UNSUPPORTED_MEDIA_TYPE", "BODY_TOO_LARGE", "AUTH_TOKEN_INVALID", "TOO_MANY_ATTEMPTS"]) {
      assert.ok(codes.includes(code), `refused with ${code}`);
    }
    for (const name of ["gatehouse_registrations_total", "gatehouse_http_requests_total", "gatehouse_client_errors_total"]) {
      assert.equal(await metricText(front, name), await metricText(koa, name), name);
    }
    assert.match(await metricText(front, "gatehouse_registrations_total"), /outcome="ip_blacklisted"\} 3/);
    assert.deepEqual((await front.ctx.store.listPending(front.clock.now())).map((p) => p.username).sort(), ["alice", "bob", "carol"]);
    assert.equal(reachedKoa, 0);
    assert.equal((await frontHttp.get("/healthz")).status, 200);
    assert.equal(reachedKoa, 1);
  });
});

test("with trustProxy and HTTPS required, the forwarded address and scheme count the same both ways", async () => {
  await both({ ...OVERRIDES, trustProxy: true, register: { ...OVERRIDES.register, secure: true } }, async (front, koa, koaHttp) => {
    const calls: Call[] = [
      { label: "plain HTTP", body: encode(fields()) },
      { label: "the client's own https before the proxy's http", headers: { "X-Forwarded-Proto": "https, http" }, body: encode(fields()) },
      { label: "forwarded https", headers: { "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9, 192.0.2.10" }, body: encode(fields()) },
      { label: "forwarded, blacklisted end user", headers: { "X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.11" }, body: encode(fields({ ip: "203.0.113.5" })) },
      { label: "an empty last hop", headers: { "X-Forwarded-Proto": "HTTPS", "X-Forwarded-For": "192.0.2.12, " }, body: encode(fields({ username: "gina", mail: "gina@example.org", ip: "198.51.100.20", auth_token: "wrong" })) },
    ];
    for (const call of calls) assert.deepEqual(seen(await send(front.http, call)), seen(await send(koaHttp, call)), call.label);
    assert.deepEqual(lines(front), lines(koa));
    const refused = front.logs.lines.filter((l) => l["msg"] === "request refused");
    assert.deepEqual(refused.map((l) => l["code"]), ["HTTPS_REQUIRED", "HTTPS_REQUIRED", "IP_BLACKLISTED", "AUTH_TOKEN_INVALID"]);
    assert.deepEqual([refused[2]!["peer"], refused[2]!["ip"]], ["192.0.2.11", "203.0.113.5"]);
    // An empty last hop names nobody: the socket's own address is the peer.
    assert.match(String(refused[3]!["peer"]), /127\.0\.0\.1|::1/);
    const pending = await front.ctx.store.listPending(front.clock.now());
    assert.deepEqual(pending.map((p) => p.username), ["alice"]);
  });
});

/** Sends a registration that stops half-way and closes; resolves when the server has seen it go. */
async function abandon(server: Server, path: string): Promise<void> {
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n${"A".repeat(100)}`);
      setTimeout(() => socket.destroy(), 50);
    });
    socket.on("close", () => setTimeout(resolve, 100));
    socket.on("error", reject);
  });
}

test("a registration the client abandons half-way is counted as the client's fault both ways, and nothing is refused or stored", async () => {
  await both(OVERRIDES, async (front, koa) => {
    const servers = [createServer(front.app.callback()), createServer(koa.app.callback())];
    try {
      for (const server of servers) await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      for (const server of servers) await abandon(server, BASE);
      assert.equal(await metricText(front, "gatehouse_client_errors_total"), await metricText(koa, "gatehouse_client_errors_total"));
      assert.match(await metricText(front, "gatehouse_client_errors_total"), /reason="aborted"\} 1/);
      assert.deepEqual(lines(front), lines(koa));
      assert.ok(front.logs.lines.some((l) => l["msg"] === "client did not finish the request" && l["route"] === BASE));
      assert.ok(!front.logs.lines.some((l) => l["msg"] === "request refused"));
    } finally {
      for (const server of servers) server.close();
    }
  });
});
