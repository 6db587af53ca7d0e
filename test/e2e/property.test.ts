import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import fc from "fast-check";
import { createLimiters } from "../../src/domain/limiter.ts";
import { AUTH_TOKEN, createHarness, postRegistration, registration, storeSnapshot, type Harness, type StoreSnapshot } from "../helpers/harness.ts";
import { client, createKey, identityCookie, PASSWORD } from "../helpers/invites.ts";

// DESIGN.md §8, as properties: whatever arrives — random JSON, base64, bytes, Unicode, content
// types, header values, paths and methods — at any endpoint, the answer is never a 5xx and
// nothing stored changes. The store holds a pending registration, an account, an API key, an
// invite and a session, so "nothing changed" means something. Real credentials appear only
// where they cannot succeed (GETs that change nothing, or alongside a field that must be
// refused); everything else carries near misses.
//
// A failure prints fast-check's seed and path; pin it with { seed, path } in RUNS to replay it.

const BASE = "/register_account/";
const VERIFY = `${BASE}verify/`;
const INVITES_API = "/invites_api";
const RUNS = { numRuns: 150, includeErrorInReport: true };

interface World {
  h: Harness;
  server: Server;
  port: number;
  pendingToken: string;
  key: { id: string; secret: string };
  inviteId: string;
  sessionToken: string;
  before: Snapshot;
}

interface Snapshot {
  store: StoreSnapshot;
  invites: Awaited<ReturnType<Harness["ctx"]["store"]["listInvites"]>>;
  keys: Awaited<ReturnType<Harness["ctx"]["store"]["listApiKeys"]>>;
}

async function snapshot(h: Harness): Promise<Snapshot> {
  return { store: await storeSnapshot(h), invites: await h.ctx.store.listInvites(), keys: await h.ctx.store.listApiKeys() };
}

let world: World;

before(async () => {
  const h = await createHarness({
    // Forwarded headers are honoured, so random X-Forwarded-* values reach ctx.ip and ctx.protocol.
    trustProxy: true,
    register: { blockDisposable: true, blacklist: ["203.0.113.0/24", "2001:db8::/32"], filteredMails: ["banned\\.example$"], throttleSeconds: 60 },
  });
  const pending = await postRegistration(h, registration({ username: "pending1", mail: "pending1@example.org" }));
  assert.equal(pending.status, 200, pending.text);
  const active = await postRegistration(h, registration({ username: "active1", mail: "active1@example.org", password: PASSWORD, ip: "192.0.2.10" }));
  assert.equal(active.status, 200, active.text);
  assert.equal((await client(h).post(`${VERIFY}${active.text}`)).status, 200);
  const key = await createKey(h, "fuzz key");
  const invite = await client(h).post("/api/invite").set("Authorization", `Bearer ${key.key}`);
  assert.equal(invite.status, 200, invite.text);
  const login = await client(h).post("/api/auth/login").send({ name: "active1", password: PASSWORD });
  assert.equal(login.status, 204, login.text);
  const cookie = identityCookie(login);
  assert.ok(cookie, "login sets the identity cookie");

  const server = createServer(h.app.callback());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const before = await snapshot(h);
  assert.equal(before.store.pending.length, 1);
  assert.equal(before.store.accounts.length, 1);
  assert.equal(before.invites.length, 1);
  assert.equal(before.keys.length, 1);
  world = {
    h,
    server,
    port: (server.address() as AddressInfo).port,
    pendingToken: pending.text,
    key: { id: key.id, secret: key.secret },
    inviteId: invite.body.id as string,
    sessionToken: cookie.value,
    before,
  };
});

after(async () => {
  if (!world) return;
  world.server.closeAllConnections();
  await new Promise((resolve) => world.server.close(resolve));
  await world.h.close();
});

// The requests.

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | null;
}

interface Res {
  status: number;
  text: string;
}

/** Plain node:http, so the method, path, headers and bytes go out exactly as generated. */
function send(req: Req): Promise<Res> {
  // node:http frames no body for DELETE, OPTIONS or TRACE unless told its length.
  const headers = req.body === null ? req.headers : { ...req.headers, "content-length": String(req.body.length) };
  return new Promise((resolve, reject) => {
    const out = httpRequest(
      { host: "127.0.0.1", port: world.port, method: req.method, path: req.path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    out.setTimeout(5000, () => out.destroy(new Error("no answer within 5 s")));
    out.on("error", reject);
    out.end(req.body ?? undefined);
  });
}

function describe(req: Req): string {
  const body = req.body === null ? "(no body)" : JSON.stringify(req.body.toString("latin1").slice(0, 300));
  return `${req.method} ${req.path.slice(0, 200)} ${JSON.stringify(req.headers).slice(0, 400)} ${body}`;
}

/** One run: a fresh set of limiters (so every run reaches the deep checks), one request, and the invariants. */
async function check(req: Req, statuses?: Map<number, number>): Promise<void> {
  world.h.ctx.limiters = createLimiters(world.h.config.register.throttleSeconds);
  const res = await send(req);
  statuses?.set(res.status, (statuses.get(res.status) ?? 0) + 1);
  assert.ok(res.status >= 100 && res.status < 500, `${describe(req)} → ${res.status} ${res.text.slice(0, 300)}`);
  assert.deepEqual(await snapshot(world.h), world.before, `${describe(req)} → ${res.status} changed what is stored`);
}

async function assertWorldIntact(): Promise<void> {
  const unexpected = world.h.logs.lines.filter((l) => l["level"] === 50);
  assert.deepEqual(unexpected.map((l) => l["msg"]), [], `errors were logged: ${JSON.stringify(unexpected).slice(0, 1000)}`);
  const me = await client(world.h).get("/api/me").set("Cookie", `identity=${world.sessionToken}`);
  assert.equal(me.status, 200, `the session still works: ${me.text}`);
  const confirm = await client(world.h).get(`${VERIFY}${world.pendingToken}`);
  assert.equal(confirm.status, 200, "the pending registration's link still shows its confirm page");
  const invite = await client(world.h).get(`/api/invite/${world.inviteId}`);
  assert.equal(invite.status, 200, "the invite is still live");
}

// Building blocks.

const char = (min: number, max: number, except: number[] = []) =>
  fc.integer({ min, max }).filter((c) => !except.includes(c)).map((c) => String.fromCharCode(c));

/** What node:http will put in a header value: tab, visible ASCII and space, and Latin-1's upper half. */
const headerChar = fc.oneof({ weight: 8, arbitrary: char(0x20, 0x7e) }, { weight: 1, arbitrary: fc.constant("\t") }, { weight: 2, arbitrary: char(0x80, 0xff) });
const headerValue = fc.string({ unit: headerChar, maxLength: 120 });
const tokenChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~");
/** Framing headers are the client's to set; a random one would only test node's parser. */
const FRAMING = new Set(["content-length", "transfer-encoding", "connection", "upgrade", "expect", "host", "te", "trailer", "keep-alive", "content-encoding"]);
const headerName = fc.string({ unit: tokenChar, minLength: 1, maxLength: 30 }).filter((n) => !FRAMING.has(n.toLowerCase()));

const fullUnicode = fc.string({ unit: "binary", maxLength: 60 });
const graphemes = fc.string({ unit: "grapheme", maxLength: 30 });
const loneSurrogates = fc.string({ unit: char(0xd800, 0xdfff), minLength: 1, maxLength: 4 });
const anyText = fc.oneof(fc.string({ maxLength: 60 }), fullUnicode, graphemes, loneSurrogates.map((s) => `a${s}b`));

/** Percent-encodes every byte but the unreserved ones (encodeURIComponent throws on lone surrogates). */
function percentEncode(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += /[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

/** A path segment: encoded Unicode or bytes, raw printable ASCII (so / ? % # too), raw Latin-1, or a known oddity. */
const segment = fc.oneof(
  fullUnicode.map((s) => percentEncode(Buffer.from(s, "utf8"))),
  fc.uint8Array({ maxLength: 40 }).map(percentEncode),
  fc.string({ unit: char(0x21, 0x7e), maxLength: 40 }),
  fc.string({ unit: char(0x80, 0xff), minLength: 1, maxLength: 8 }),
  fc.constantFrom("", ".", "..", "%", "%ZZ", "%00", "%ED%A0%80", "%C0%AF", "%F4%90%80%80", "x".repeat(300), "a/b", "?", "#x"),
);

/** A query string: random parameters, or raw text. */
const queryString = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 10 }), fc.oneof(anyText, headerValue), { maxKeys: 4 }).map((d) => new URLSearchParams(d).toString()),
  fc.string({ unit: char(0x21, 0x7e), maxLength: 60 }),
  segment,
);

/** Near misses of a real secret: never the secret itself, nor anything a lookup would trim to it. */
function nearMisses(real: string): fc.Arbitrary<string> {
  return fc
    .oneof(
      fc.constant(`${real}x`),
      fc.constant(real.slice(1)),
      fc.constant(real.slice(0, -1)),
      fc.constant(real.toUpperCase()),
      fc.constant(real.toLowerCase()),
      fc.constant(`${real}%00`),
      fc.nat({ max: real.length - 1 }).map((i) => real.slice(0, i) + (real[i] === "A" ? "B" : "A") + real.slice(i + 1)),
    )
    .filter((s) => s !== real);
}

const randomToken = fc.oneof(segment, fc.base64String({ maxLength: 60 }), anyText.map((s) => percentEncode(Buffer.from(s, "utf8"))));

// Bodies.

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const CONTENT_TYPES = [
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=latin1",
  "application/encoded",
  "application/x-www-form-urlencoded",
  "text/plain",
  "text/html",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "application/*",
  "*/*",
  "/",
  ";;;",
  "application/json;;",
  "APPLICATION/JSON",
];
/** null: no Content-Type header at all. */
const contentType = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: headerValue },
);

interface Body {
  type: string | null;
  bytes: Buffer | null;
}

const wrap = (s: string, width: number, sep: string) => s.match(new RegExp(`.{1,${width}}`, "g"))?.join(sep) ?? s;

/** The ways a website might encode JSON for mod_register_json, right or wrong. */
function asBase64(text: string): fc.Arbitrary<string> {
  const std = Buffer.from(text, "utf8").toString("base64");
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(std, std.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""), wrap(std, 76, "\r\n"), ` ${wrap(std, 64, "\n\t")} `) },
    { weight: 1, arbitrary: fc.constantFrom(std.replace(/=+$/, "") + "===", std.slice(1)) },
  );
}

const rawBody: fc.Arbitrary<Body> = fc.oneof(
  fc.record({ type: contentType, bytes: jsonValue.map((v) => Buffer.from(JSON.stringify(v) ?? "null", "utf8")) }),
  fc.record({ type: contentType, bytes: jsonValue.chain((v) => asBase64(JSON.stringify(v) ?? "null")).map((s) => Buffer.from(s, "latin1")) }),
  fc.record({ type: contentType, bytes: fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)) }),
  fc.record({ type: contentType, bytes: anyText.map((s) => Buffer.from(s, "utf8")) }),
  fc.record({
    type: contentType,
    bytes: fc.dictionary(fc.constantFrom("uuid", "token", "name", "password", "username", "key", "uses", "ttl", "redirect", "x"), anyText, { maxKeys: 4 }).map((d) => Buffer.from(new URLSearchParams(d).toString())),
  }),
  fc.record({ type: contentType, bytes: fc.constant(null) }),
);

function withBody(base: Omit<Req, "body">, body: Body): Req {
  const headers = { ...base.headers };
  if (body.type !== null && body.bytes !== null) headers["content-type"] = body.type;
  return { ...base, headers, body: body.bytes };
}

// Headers.

function cookieArb(allowReal: boolean): fc.Arbitrary<string> {
  const value = fc.oneof(nearMisses(world.sessionToken), randomToken, headerValue, ...(allowReal ? [fc.constant(world.sessionToken)] : []));
  return fc.oneof(value.map((v) => `identity=${v}`), headerValue, value.map((v) => `a=b; identity=${v}; identity=x`));
}

/** Keys that must not authenticate; `headerSafe` keeps to what a header value may hold. */
function wrongKey(headerSafe = false): fc.Arbitrary<string> {
  const { id, secret } = world.key;
  return fc.oneof(
    nearMisses(secret).map((s) => `${id}/${s}`),
    fc.constant(`${id}/`),
    fc.constant(`/${secret}`),
    fc.constant(`${id}${secret}`),
    nearMisses(id).map((i) => `${i}/${secret}`),
    headerSafe ? headerValue : anyText,
  );
}

/** The headers a request may carry; `allowRealCookie` only where a session cannot change anything. */
function headersArb(allowRealCookie: boolean): fc.Arbitrary<Record<string, string>> {
  const known = fc.record(
    {
      accept: fc.oneof(fc.constantFrom("application/json", "text/html", "*/*", "text/plain", "application/json;q=0, text/html"), headerValue),
      authorization: fc.oneof(wrongKey(true).map((k) => `Bearer ${k}`), headerValue, fc.constant("Bearer"), fc.constant("Basic YTpi")),
      cookie: cookieArb(allowRealCookie),
      origin: fc.oneof(fc.constantFrom("http://gatehouse.test", "null", "https://evil.example"), headerValue),
      "sec-fetch-site": fc.oneof(fc.constantFrom("same-origin", "cross-site", "same-site", "none"), headerValue),
      "x-forwarded-for": fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("203.0.113.7", "1.2.3.4, 5.6.7.8", "unknown", ""), headerValue),
      "x-forwarded-proto": fc.oneof(fc.constantFrom("https", "http", "https, http"), headerValue),
      "x-forwarded-host": headerValue,
      "accept-language": headerValue,
      "user-agent": headerValue,
    },
    { requiredKeys: [] },
  );
  const extra = fc.dictionary(headerName, headerValue, { maxKeys: 3 });
  return fc.tuple(known, extra).map(([k, e]) => ({ ...e, ...k } as Record<string, string>));
}

// Endpoints: every route, with the methods it has and some it has not.

const ANY_METHOD = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "MKCOL", "TRACE", "SEARCH", "FOO");

interface Endpoint {
  method: string;
  path: string;
  /** GETs and HEADs may carry the real session and real tokens: they change nothing. */
  safe: boolean;
}

function endpointArb(): fc.Arbitrary<Endpoint> {
  const safeMethod = fc.constantFrom("GET", "HEAD");
  const real = (value: string) => fc.oneof(fc.constant(value), nearMisses(value), randomToken);
  const unreal = (value: string) => fc.oneof(nearMisses(value), randomToken);
  const ep = (method: fc.Arbitrary<string>, path: fc.Arbitrary<string>) =>
    fc.tuple(method, path).map(([m, p]) => ({ method: m, path: p, safe: m === "GET" || m === "HEAD" }));
  const q = fc.option(queryString, { nil: undefined }).map((s) => (s === undefined ? "" : `?${s}`));
  return fc.oneof(
    ep(fc.constant("POST"), q.map((s) => `${BASE}${s}`)),
    ep(ANY_METHOD, fc.constant(BASE)),
    ep(ANY_METHOD, fc.constant(VERIFY)),
    ep(safeMethod, real(world.pendingToken).map((t) => `${VERIFY}${t}`)),
    ep(fc.constantFrom("POST", "PUT", "DELETE"), unreal(world.pendingToken).map((t) => `${VERIFY}${t}`)),
    ep(ANY_METHOD, q.map((s) => `${INVITES_API}${s}`)),
    ep(fc.constantFrom("GET", "POST"), wrongKey().map((k) => `${INVITES_API}?key=${percentEncode(Buffer.from(k, "utf8"))}`)),
    ep(ANY_METHOD, q.map((s) => `/api/invite${s}`)),
    ep(safeMethod, real(world.inviteId).map((t) => `/api/invite/${t}`)),
    ep(fc.constantFrom("POST", "PUT", "DELETE"), unreal(world.inviteId).map((t) => `/api/invite/${t}`)),
    ep(ANY_METHOD, fc.constantFrom("/api/auth/login", "/api/auth/logout", "/api/me", "/api/", "/api")),
    ep(safeMethod, real(world.inviteId).map((t) => `/invite/${t}`)),
    ep(fc.constantFrom("POST", "PUT"), unreal(world.inviteId).map((t) => `/invite/${t}`)),
    ep(safeMethod, fc.oneof(real(world.inviteId), queryString).map((t) => `/invite?${t}`)),
    ep(ANY_METHOD, fc.constantFrom("/healthz", "/metrics", "/", "/invite", "/invite/")),
    ep(ANY_METHOD, fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`)),
    ep(ANY_METHOD, fc.tuple(fc.constantFrom(BASE, VERIFY, "/api/", "/invite/", `${INVITES_API}/`), segment, q).map(([a, b, c]) => `${a}${b}${c}`)),
  );
}

function requestArb(): fc.Arbitrary<Req> {
  return endpointArb().chain((ep) =>
    fc.tuple(headersArb(ep.safe), rawBody).map(([headers, body]) => withBody({ method: ep.method, path: ep.path, headers }, ep.method === "GET" || ep.method === "HEAD" ? { type: body.type, bytes: null } : body)),
  );
}

// Registration-shaped objects: each field right, near, of the wrong type, or odd Unicode.

const HELD_MAILS = ["pending1@example.org", "ACTIVE1@example.org", " active1@Example.ORG ", "Pending1@EXAMPLE.org"];
/** Mails that are held, filtered, disposable or malformed: so no random registration can be stored. */
const refusedMail = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...HELD_MAILS, "x@mailinator.com", "y@sub.mailinator.com", "z@banned.example") },
  { weight: 1, arbitrary: anyText.filter((s) => !s.includes("@")) },
  { weight: 1, arbitrary: jsonValue.filter((v) => typeof v !== "string") },
);

/** Mostly right, sometimes wrong: a field of the wrong type or odd Unicode, so every row of §3 is reached. */
const mostly = <T>(right: fc.Arbitrary<T>, ...wrong: fc.Arbitrary<unknown>[]) =>
  fc.oneof({ weight: 15, arbitrary: right as fc.Arbitrary<unknown> }, ...wrong.map((arbitrary) => ({ weight: 1, arbitrary })));

const registrationShaped = fc
  .tuple(
    fc.record({
      username: mostly(
        fc.oneof(fc.constantFrom("newname", "ｎｅｗ", "NewName", "active1"), fc.constantFrom("pending1", "PENDING1", "Admin", "two words", "a@b", "", "new\u202Ename")),
        anyText,
        jsonValue,
      ),
      password: mostly(fc.oneof({ weight: 4, arbitrary: fc.constant(PASSWORD) }, { weight: 1, arbitrary: fc.constantFrom("short", "😀😀😀😀😀😀😀") }), anyText, jsonValue),
      ip: mostly(fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom("203.0.113.9", "::ffff:203.0.113.9", "2001:db8::1", "::ffff:1.2.3.4")), fc.constantFrom("127.1", "0x7f.1", "1.2.3.4/24"), anyText, jsonValue),
      mail: refusedMail,
      auth_token: mostly(fc.constant(AUTH_TOKEN), nearMisses(AUTH_TOKEN), anyText, jsonValue),
    }),
    fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom("username", "password", "ip", "mail", "auth_token") }),
  )
  .map(([fields, missing]) => {
    const copy: Record<string, unknown> = { ...fields };
    if (missing !== undefined) delete copy[missing];
    return copy;
  });

const registrationBody: fc.Arbitrary<Body> = fc
  .tuple(registrationShaped, fc.dictionary(fc.string({ maxLength: 10 }), jsonValue, { maxKeys: 2 }), fc.boolean())
  .chain(([fields, extra, extraFirst]) => {
    const text = JSON.stringify(extraFirst ? { ...extra, ...fields } : { ...fields, ...extra });
    return fc.oneof(
      { weight: 3, arbitrary: fc.record({ type: fc.constantFrom("application/json", "application/json; charset=utf-8"), bytes: fc.constant(Buffer.from(text, "utf8")) }) },
      { weight: 3, arbitrary: fc.record({ type: fc.oneof(fc.constantFrom("application/encoded", "text/plain"), fc.constant(null)), bytes: asBase64(text).map((s) => Buffer.from(s, "latin1")) }) },
      { weight: 1, arbitrary: fc.record({ type: contentType, bytes: fc.constant(Buffer.from(text, "utf8")) }) },
    );
  });

// The invitation API's JSON bodies; with the real invite only when the password is too short.

const shortPassword = fc.oneof(fc.string({ unit: "binary", maxLength: 7 }), jsonValue.filter((v) => typeof v !== "string"));
const apiName = fc.oneof(fc.constantFrom("active1", "pending1", "Admin", "newbie", "two words", ""), anyText, jsonValue);

// The properties.

test("random requests at every endpoint never answer 5xx nor change what is stored", async () => {
  const statuses = new Map<number, number>();
  await fc.assert(fc.asyncProperty(requestArb(), (req) => check(req, statuses)), { ...RUNS, numRuns: 300 });
  assert.ok(statuses.size >= 5, `varied answers: ${JSON.stringify([...statuses])}`);
  await assertWorldIntact();
});

test("random registration-shaped bodies, raw or base64, never answer 5xx nor store anything", async () => {
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(registrationBody, headersArb(false), (body, headers) => check(withBody({ method: "POST", path: BASE, headers }, body), statuses)),
    { ...RUNS, numRuns: 200 },
  );
  // Enough runs get past the shape and the auth_token to reach the later rows of §3.
  for (const status of [400, 401, 403, 406, 409]) assert.ok(statuses.has(status), `a ${status} among ${JSON.stringify([...statuses])}`);
  await assertWorldIntact();
});

test("random names and passwords at the invitation API, the invite page and login never answer 5xx nor change what is stored", async () => {
  const realInvite = fc.record({ name: apiName, password: shortPassword }, { requiredKeys: [] }).map((b) => ({
    path: `/api/invite/${world.inviteId}`,
    json: b as Record<string, unknown>,
  }));
  const otherInvite = fc.tuple(nearMisses(world.inviteId), fc.record({ name: apiName, password: fc.oneof(anyText, jsonValue) }, { requiredKeys: [] })).map(([id, b]) => ({
    path: `/api/invite/${percentEncode(Buffer.from(id, "utf8"))}`,
    json: b as Record<string, unknown>,
  }));
  const loginBody = fc.record({ name: apiName, password: fc.oneof(anyText, jsonValue).filter((p) => p !== PASSWORD) }, { requiredKeys: [] }).map((b) => ({
    path: "/api/auth/login",
    json: b as Record<string, unknown>,
  }));
  const apiReq = fc.tuple(fc.oneof(realInvite, otherInvite, loginBody), headersArb(false), fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain")).map(
    ([r, headers, type]): Req => ({ method: "POST", path: r.path, headers: { ...headers, "content-type": type }, body: Buffer.from(JSON.stringify(r.json), "utf8") }),
  );
  // The invite page's form, on the real invite: any name, a password too short to be accepted.
  const pageReq = fc
    .tuple(fc.option(anyText, { nil: undefined }), fc.option(fc.string({ unit: "binary", maxLength: 7 }), { nil: undefined }), headersArb(false))
    .map(([username, password, headers]): Req => {
      const form = new URLSearchParams();
      if (username !== undefined) form.set("username", username);
      if (password !== undefined) form.set("password", password);
      return { method: "POST", path: `/invite/${world.inviteId}`, headers: { ...headers, "content-type": "application/x-www-form-urlencoded" }, body: Buffer.from(form.toString()) };
    });
  // mod_invites_api with the real key and a use count that must be refused.
  const badUses = fc.oneof(fc.constantFrom("0", "-1", "1001", "999999999", "1.5", "1e3", " 1", "0x10"), anyText.filter((s) => s !== "" && !/^\d{1,9}$/.test(s)));
  const keyReq = fc
    .tuple(badUses, fc.option(anyText, { nil: undefined }), fc.option(anyText, { nil: undefined }), fc.constantFrom("GET", "POST"), fc.boolean())
    .map(([uses, ttl, username, method, inBody]): Req => {
      const params = new URLSearchParams({ key: `${world.key.id}/${world.key.secret}`, uses });
      if (ttl !== undefined) params.set("ttl", ttl);
      if (username !== undefined) params.set("username", username);
      if (method === "POST" && inBody) {
        return { method, path: INVITES_API, headers: { "content-type": "application/x-www-form-urlencoded" }, body: Buffer.from(params.toString()) };
      }
      return { method, path: `${INVITES_API}?${params.toString()}`, headers: {}, body: null };
    });
  // Random headers and bodies rarely get a near-miss id as far as the lookup (found flaky: no 404
  // in some runs of 150), so one well-formed near miss always runs first, among the random ones.
  const nearMiss: Req = {
    method: "POST",
    path: `/api/invite/${world.inviteId}x`,
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify({ name: "newbie", password: "long enough to be accepted" }), "utf8"),
  };
  // Likewise a login only reaches the password check (401) with a JSON body, a string name and a
  // string password, which random ones sometimes never give (found flaky: no 401 in a CI run of 150).
  const wrongPassword: Req = {
    method: "POST",
    path: "/api/auth/login",
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify({ name: "active1", password: `not ${PASSWORD}` }), "utf8"),
  };
  const statuses = new Map<number, number>();
  await fc.assert(fc.asyncProperty(fc.oneof(apiReq, pageReq, keyReq), (req) => check(req, statuses)), { ...RUNS, examples: [[nearMiss], [wrongPassword]] });
  for (const status of [400, 401, 404]) assert.ok(statuses.has(status), `a ${status} among ${JSON.stringify([...statuses])}`);
  await assertWorldIntact();
});
