import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LOGIN_FAILURE_POINTS } from "../src/domain/limiter.ts";
import { SESSION_TTL_MS } from "../src/domain/sessions.ts";
import { postRegistration, registration, withHarness, type Harness } from "./helpers/harness.ts";
import {
  cli,
  client,
  createKey,
  databaseContains,
  identityCookie,
  issueInvite,
  PASSWORD,
  tokenOf,
} from "./helpers/invites.ts";

// DESIGN.md §5: API keys, mod_invites_api, pilcrow's invitation API, logins, and the invite page.

const PUBLIC_URL = "http://gatehouse.test";
const API_PATH = "/invites_api";
const DEFAULT_TTL_MS = 604_800 * 1000;
const INVITE_URL = /^http:\/\/gatehouse\.test\/invite\/([A-Za-z0-9_-]{22,})$/;

/** POST /api/invite/:id as pilcrow's client sends it. */
function accept(h: Harness, id: string, name: string, password = PASSWORD) {
  return client(h).post(`/api/invite/${encodeURIComponent(id)}`).set("Accept", "application/json").send({ name, password });
}

/** An account made through an invite, and its session cookie pair (`identity=…`). */
async function invitedAccount(h: Harness, name: string, keyName = "Alice's key"): Promise<{ cookie: string; inviteId: string }> {
  const { id } = await issueInvite(h, keyName);
  const res = await accept(h, id, name);
  assert.equal(res.status, 204, res.text);
  const cookie = identityCookie(res);
  assert.ok(cookie, "accepting sets the identity cookie");
  return { cookie: cookie.pair, inviteId: id };
}

function me(h: Harness, cookie?: string) {
  const req = client(h).get("/api/me").set("Accept", "application/json");
  return cookie ? req.set("Cookie", cookie) : req;
}

function login(h: Harness, name: string, password: string) {
  return client(h).post("/api/auth/login").set("Accept", "application/json").send({ name, password });
}

/** The handle `invites list` shows for the only invite, or for the one issued to `username`. */
async function handles(h: Harness): Promise<{ handle: string; state: string; uses: string; issuer: string; username: string }[]> {
  const res = await cli(h, "invites", "list");
  assert.equal(res.code, 0, res.err.join("\n"));
  return res.out.map((line) => {
    const [handle = "", state = "", uses = "", , issuer = "", username = ""] = line.split("\t");
    return { handle, state, uses, issuer, username };
  });
}

async function accountNames(h: Harness): Promise<string[]> {
  return (await h.ctx.store.listAccounts()).map((a) => a.username);
}

// ---------------------------------------------------------------------------------------------
describe("API keys (gatehouse keys create|list|delete)", () => {
  test("keys create prints ID/SECRET once, and keys list prints ID<TAB>NAME without the secret", async () => {
    await withHarness({}, async (h) => {
      const created = await cli(h, "keys", "create", "My test key");
      assert.equal(created.code, 0, created.err.join("\n"));
      assert.equal(created.out.length, 1, "exactly one line: the key");
      const [id, secret] = created.out[0]!.split("/");
      assert.match(created.out[0]!, /^[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+$/);
      assert.ok(id && secret, "ID and SECRET are both there");
      assert.ok(Buffer.from(secret, "base64url").length >= 16, "the secret has at least 128 bits");

      const listed = await cli(h, "keys", "list");
      assert.equal(listed.code, 0);
      assert.deepEqual(listed.out, [`${id}\tMy test key`]);
      assert.ok(!listed.out.join("\n").includes(secret), "the secret is never listed");
      assert.ok(!listed.err.join("\n").includes(secret), "nor printed to stderr");

      // A second key: a different id and secret, both listed.
      const other = await createKey(h, "second");
      assert.notEqual(other.id, id);
      assert.notEqual(other.secret, secret);
      assert.deepEqual((await cli(h, "keys", "list")).out.sort(), [`${id}\tMy test key`, `${other.id}\tsecond`].sort());
    });
  });

  test("the database holds an API key's id but never its secret in the clear", async () => {
    await withHarness({}, async (h) => {
      const { id, secret } = await createKey(h, "stored key");
      assert.ok(databaseContains(h, id), "sanity: the key id is found in the database bytes");
      assert.ok(!databaseContains(h, secret), "the secret is stored only as a hash");
    });
  });

  test("keys delete ID removes the key; keys delete of an unknown id exits 1 with a message on stderr", async () => {
    await withHarness({}, async (h) => {
      const kept = await createKey(h, "kept");
      const gone = await createKey(h, "gone");
      const deleted = await cli(h, "keys", "delete", gone.id);
      assert.equal(deleted.code, 0, deleted.err.join("\n"));
      assert.deepEqual((await cli(h, "keys", "list")).out, [`${kept.id}\tkept`]);

      const unknown = await cli(h, "keys", "delete", "nope");
      assert.equal(unknown.code, 1);
      assert.deepEqual(unknown.out, []);
      assert.match(unknown.err.join("\n"), /nope/);
      assert.deepEqual((await cli(h, "keys", "list")).out, [`${kept.id}\tkept`]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("mod_invites_api (GET/POST /invites_api)", () => {
  test("GET with ?key=ID/SECRET answers 201 with Location {publicUrl}/invite/{token} and a JSON body", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h, "website");
      const res = await client(h).get(`${API_PATH}?key=${key}`);
      assert.equal(res.status, 201, res.text);
      const location = res.headers["location"] as string;
      const match = INVITE_URL.exec(location);
      assert.ok(match, `Location is an invite URL: ${location}`);
      assert.match(res.headers["content-type"] as string, /^application\/json/);
      assert.equal(res.body.url, location);
      assert.equal(res.body.id, match[1]);
      assert.equal(res.body.issued_at, new Date(h.clock.now()).toISOString());
      assert.equal(res.body.expires_at, new Date(h.clock.now() + DEFAULT_TTL_MS).toISOString());

      // The link works: the invite is live, issued in the key's name, for one use.
      const info = await client(h).get(`/api/invite/${match[1]}`).set("Accept", "application/json");
      assert.equal(info.status, 200);
      assert.equal(info.body.issuer.name, "website");
      assert.deepEqual((await handles(h)).map((i) => i.uses), ["1/1"]);
    });
  });

  test("POST with ?key=ID/SECRET answers 201 as GET does", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const res = await client(h).post(`${API_PATH}?key=${encodeURIComponent(key)}`);
      assert.equal(res.status, 201, res.text);
      assert.match(res.headers["location"] as string, INVITE_URL);
      assert.equal(res.body.url, res.headers["location"]);
    });
  });

  test("Authorization: Bearer ID/SECRET works without a query string", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      for (const method of ["get", "post"] as const) {
        const res = await client(h)[method](API_PATH).set("Authorization", `Bearer ${key}`);
        assert.equal(res.status, 201, `${method}: ${res.text}`);
        assert.match(res.headers["location"] as string, INVITE_URL);
      }
      assert.equal((await handles(h)).length, 2);
    });
  });

  test("redirect=true answers 303 See Other to the same kind of Location", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const res = await client(h).get(`${API_PATH}?key=${key}&redirect=true`).redirects(0);
      assert.equal(res.status, 303, res.text);
      const location = res.headers["location"] as string;
      const match = INVITE_URL.exec(location);
      assert.ok(match, `Location is an invite URL: ${location}`);
      const page = await client(h).get(`/invite/${match[1]}`);
      assert.equal(page.status, 200);
    });
  });

  test("no key, no query string, a wrong secret, a wrong id and a deleted key are all answered 403 and create nothing", async () => {
    await withHarness({}, async (h) => {
      const { key, id, secret } = await createKey(h, "live");
      const deleted = await createKey(h, "deleted");
      assert.equal((await cli(h, "keys", "delete", deleted.id)).code, 0);
      const wrongSecret = `${id}/${secret.slice(0, -2)}${secret.endsWith("AA") ? "BB" : "AA"}`;
      const cases: [string, () => ReturnType<ReturnType<typeof client>["get"]>][] = [
        ["no query string at all", () => client(h).get(API_PATH)],
        ["parameters but no key", () => client(h).get(`${API_PATH}?uses=1&redirect=true`)],
        ["an empty key", () => client(h).get(`${API_PATH}?key=`)],
        ["a key without a slash", () => client(h).get(`${API_PATH}?key=${id}`)],
        ["a wrong secret", () => client(h).get(`${API_PATH}?key=${wrongSecret}`)],
        ["a wrong secret as Bearer", () => client(h).get(API_PATH).set("Authorization", `Bearer ${wrongSecret}`)],
        ["a wrong id", () => client(h).get(`${API_PATH}?key=nope/${secret}`)],
        ["a deleted key", () => client(h).get(`${API_PATH}?key=${deleted.key}`)],
        ["a deleted key as Bearer, POST", () => client(h).post(API_PATH).set("Authorization", `Bearer ${deleted.key}`)],
      ];
      for (const [what, send] of cases) {
        const res = await send().redirects(0);
        assert.equal(res.status, 403, `${what}: ${res.status} ${res.text}`);
        assert.equal(res.headers["location"], undefined, what);
      }
      assert.deepEqual(await handles(h), [], "no invite was created");
      // The right key still works after all that.
      assert.equal((await client(h).get(`${API_PATH}?key=${key}`)).status, 201);
    });
  });

  test("answers carry mod_invites_api's CORS headers, and OPTIONS answers a preflight without a key", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const checkCors = (res: { headers: Record<string, string> }, what: string) => {
        assert.equal(res.headers["access-control-allow-origin"], "*", what);
        assert.match(res.headers["access-control-allow-methods"] ?? "", /\bGET\b/, what);
        assert.match(res.headers["access-control-max-age"] ?? "", /^\d+$/, what);
      };
      const created = await client(h).get(`${API_PATH}?key=${key}`).set("Origin", "https://website.example");
      assert.equal(created.status, 201);
      checkCors(created, "201");

      const preflight = await client(h)
        .options(`${API_PATH}?key=${key}`)
        .set("Origin", "https://website.example")
        .set("Access-Control-Request-Method", "GET")
        .set("Access-Control-Request-Headers", "authorization");
      assert.ok(preflight.status >= 200 && preflight.status < 300, `preflight answered ${preflight.status}`);
      checkCors(preflight, "preflight");
      assert.match(preflight.headers["access-control-allow-headers"] ?? "", /authorization/i);

      const bare = await client(h).options(API_PATH);
      assert.ok(bare.status >= 200 && bare.status < 300, `OPTIONS without a key answered ${bare.status}`);
      checkCors(bare, "OPTIONS without a key");

      // A refusal is readable by the calling page too.
      const refused = await client(h).get(API_PATH).set("Origin", "https://website.example");
      assert.equal(refused.status, 403);
      checkCors(refused, "403");
      assert.equal((await handles(h)).length, 1, "only the GET with the key created an invite");
    });
  });

  test("PUT and DELETE are answered 405 with Allow", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      for (const method of ["put", "delete", "patch"] as const) {
        const res = await client(h)[method](`${API_PATH}?key=${key}`);
        assert.equal(res.status, 405, method);
        assert.match(res.headers["allow"] ?? "", /\bGET\b/, method);
      }
      assert.deepEqual(await handles(h), []);
    });
  });

  test("uses, ttl and username shape the invite", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now(); // `invites list` reads the real clock
      const { key } = await createKey(h);
      const res = await client(h).get(`${API_PATH}?key=${key}&uses=3&ttl=600&username=Erin`);
      assert.equal(res.status, 201, res.text);
      assert.equal(res.body.uses, 3);
      assert.equal(res.body.username, "erin");
      assert.equal(Date.parse(res.body.expires_at) - Date.parse(res.body.issued_at), 600_000);
      const [listed] = await handles(h);
      assert.equal(listed?.uses, "3/3");
      assert.equal(listed?.username, "erin");

      const id = tokenOf(res.headers["location"] as string);
      const info = await client(h).get(`/api/invite/${id}`).set("Accept", "application/json");
      assert.equal(info.body.expires_at, new Date(h.clock.now() + 600_000).toISOString());
      assert.equal((await accept(h, id, "frank")).status, 403, "the invite is for erin only");
      assert.equal((await accept(h, id, "Erin")).status, 204, "the bound name, prepared the same way, is accepted");

      // Parameters may come in a POSTed form as well.
      const posted = await client(h)
        .post(API_PATH)
        .set("Authorization", `Bearer ${key}`)
        .type("form")
        .send({ uses: "2", ttl: "3600" });
      assert.equal(posted.status, 201, posted.text);
      assert.equal(posted.body.uses, 2);
      assert.equal(Date.parse(posted.body.expires_at) - Date.parse(posted.body.issued_at), 3_600_000);

      // A JSON client sends numbers; they count as much as the strings of a query or form.
      const json = await client(h).post(API_PATH).set("Authorization", `Bearer ${key}`).send({ uses: 4, ttl: 120, username: "Quinn" });
      assert.equal(json.status, 201, json.text);
      assert.equal(json.body.uses, 4);
      assert.equal(json.body.username, "quinn");
      assert.equal(Date.parse(json.body.expires_at) - Date.parse(json.body.issued_at), 120_000);
      for (const bad of [{ uses: 0 }, { uses: 1.5 }, { ttl: 5 }, { uses: [2] }, { ttl: { s: 60 } }]) {
        const res = await client(h).post(API_PATH).set("Authorization", `Bearer ${key}`).send(bad);
        assert.equal(res.status, 400, `${JSON.stringify(bad)}: ${res.text}`);
      }

      // ttl runs out on the invite's clock.
      h.clock.advance(601_000);
      assert.equal((await client(h).get(`/api/invite/${id}`)).status, 404);
    });
  });

  test("bad uses and ttl values are answered 400, a username that fails nodeprep 406, and none creates an invite", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const cases: [string, number][] = [
        ["uses=0", 400],
        ["uses=abc", 400],
        ["uses=-1", 400],
        ["uses=1.5", 400],
        ["uses=99999999999", 400],
        ["ttl=5", 400],
        ["ttl=abc", 400],
        ["ttl=-60", 400],
        ["ttl=99999999999", 400],
        ["username=a%20b", 406],
        ["username=a%40b", 406],
        ["username=%3Cx%3E", 406],
      ];
      for (const [query, status] of cases) {
        const res = await client(h).get(`${API_PATH}?key=${key}&${query}`).set("Accept", "application/json");
        assert.equal(res.status, status, `${query}: ${res.text}`);
        assert.equal(res.headers["location"], undefined, query);
      }
      assert.deepEqual(await handles(h), []);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("invites from the command line (gatehouse invites create|list|revoke)", () => {
  test("invites create --uses 2 --ttl 3600 --username erin prints a URL, and invites list shows a handle that is not the token", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      const created = await cli(h, "invites", "create", "--uses", "2", "--ttl", "3600", "--username", "erin");
      assert.equal(created.code, 0, created.err.join("\n"));
      assert.equal(created.out.length, 1);
      const url = created.out[0]!;
      assert.match(url, INVITE_URL);
      const token = tokenOf(url);
      assert.ok(Buffer.from(token, "base64url").length >= 16, "the token has at least 128 bits");

      const [listed, ...rest] = await handles(h);
      assert.deepEqual(rest, []);
      assert.ok(listed, "invites list shows the invite");
      assert.ok(listed.handle.length > 0 && listed.handle.length < token.length, "the handle is short");
      assert.ok(!token.includes(listed.handle) && !listed.handle.includes(token), "the handle is not (part of) the token");
      assert.equal(listed.state, "active");
      assert.equal(listed.uses, "2/2");
      assert.equal(listed.username, "erin");

      const info = await client(h).get(`/api/invite/${token}`).set("Accept", "application/json");
      assert.equal(info.status, 200);
      const expires = Date.parse(info.body.expires_at);
      assert.ok(Math.abs(expires - (Date.now() + 3_600_000)) < 60_000, "expires about an hour from now");

      assert.equal((await accept(h, token, "erin")).status, 204);
      const after = await handles(h);
      assert.equal(after[0]?.uses, "1/2");
      assert.ok(!databaseContains(h, token), "the invite token is stored only as a hash");
    });
  });

  test("invites revoke HANDLE makes the invite dead for the API and the page; revoking an unknown one exits 1", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      const token = tokenOf((await cli(h, "invites", "create")).out[0]!);
      const [listed] = await handles(h);
      assert.ok(listed, "invites list shows the invite");

      const revoked = await cli(h, "invites", "revoke", listed.handle);
      assert.equal(revoked.code, 0, revoked.err.join("\n"));
      assert.match(revoked.out.join("\n"), new RegExp(listed.handle));
      assert.equal((await handles(h))[0]?.state, "revoked");

      assert.equal((await client(h).get(`/api/invite/${token}`)).status, 404);
      assert.equal((await accept(h, token, "grace")).status, 404);
      const page = await client(h).get(`/invite/${token}`);
      assert.equal(page.status, 410);
      assert.match(page.headers["content-type"] as string, /^text\/html/);
      assert.deepEqual(await accountNames(h), []);

      const unknown = await cli(h, "invites", "revoke", "nope");
      assert.equal(unknown.code, 1);
      assert.match(unknown.err.join("\n"), /nope/);
    });
  });

  test("invites revoke also takes the invite link an admin pasted", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      const url = (await cli(h, "invites", "create")).out[0]!;
      const revoked = await cli(h, "invites", "revoke", url);
      assert.equal(revoked.code, 0, revoked.err.join("\n"));
      assert.ok(!revoked.out.join("\n").includes(tokenOf(url)), "the token is not echoed back");
      assert.equal((await client(h).get(`/api/invite/${tokenOf(url)}`)).status, 404);
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("invitation API: POST /api/invite", () => {
  test("with an API key as Bearer: 200 {id, issuer, issued_at, expires_at, url}", async () => {
    await withHarness({}, async (h) => {
      const { key, id: keyId } = await createKey(h, "bot");
      const res = await client(h).post("/api/invite").set("Authorization", `Bearer ${key}`).set("Accept", "application/json");
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(Object.keys(res.body).sort(), ["expires_at", "id", "issued_at", "issuer", "url"]);
      assert.equal(res.body.issuer, keyId);
      assert.equal(res.body.issued_at, new Date(h.clock.now()).toISOString());
      assert.equal(res.body.expires_at, new Date(h.clock.now() + DEFAULT_TTL_MS).toISOString());
      assert.equal(res.body.url, `${PUBLIC_URL}/invite/${res.body.id}`);
      assert.equal(res.headers["cache-control"], "no-store");

      // An empty JSON object is pilcrow's request body.
      const withBody = await client(h).post("/api/invite").set("Authorization", `Bearer ${key}`).send({});
      assert.equal(withBody.status, 200, withBody.text);
      assert.notEqual(withBody.body.id, res.body.id);
    });
  });

  test("with a logged-in identity cookie: 200, and the issuer is that login's id", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "andrea");
      const who = await me(h, cookie);
      assert.equal(who.status, 200);
      assert.equal(who.body.name, "andrea");

      const res = await client(h).post("/api/invite").set("Cookie", cookie).set("Accept", "application/json");
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.issuer, who.body.id);

      // Same-origin requests from our own pages are welcome.
      const sameOrigin = await client(h).post("/api/invite").set("Cookie", cookie).set("Origin", PUBLIC_URL);
      assert.equal(sameOrigin.status, 200, sameOrigin.text);

      const info = await client(h).get(`/api/invite/${res.body.id}`).set("Accept", "application/json");
      assert.deepEqual(info.body.issuer, { id: who.body.id, name: "andrea" });

      // Blake accepts andrea's invite; users list says who invited whom.
      assert.equal((await accept(h, res.body.id, "blake")).status, 204);
      const users = await cli(h, "users", "list");
      assert.equal(users.code, 0);
      const blake = users.out.find((line) => line.startsWith("blake\t"));
      assert.match(blake ?? "", /\tinvited by andrea$/);
    });
  });

  test("with neither a key nor a cookie: 401; with a wrong key: 403; with a cookie from another origin: 403", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "andrea");
      const before = (await handles(h)).length;

      const anonymous = await client(h).post("/api/invite").set("Accept", "application/json").send({});
      assert.equal(anonymous.status, 401, anonymous.text);

      const stale = await client(h).post("/api/invite").set("Cookie", "identity=not-a-session").send({});
      assert.equal(stale.status, 401, stale.text);

      const wrongKey = await client(h).post("/api/invite").set("Authorization", "Bearer nope/nope").set("Cookie", cookie);
      assert.equal(wrongKey.status, 403, "a wrong key is refused, not passed over for the cookie");

      const evil = await client(h).post("/api/invite").set("Cookie", cookie).set("Origin", "https://evil.example").send({});
      assert.equal(evil.status, 403, evil.text);

      const crossSite = await client(h).post("/api/invite").set("Cookie", cookie).set("Sec-Fetch-Site", "cross-site").send({});
      assert.equal(crossSite.status, 403, crossSite.text);

      assert.equal((await handles(h)).length, before, "no refused request created an invite");
    });
  });
});

describe("invitation API: GET /api/invite/:id", () => {
  test("describes a live invite as {issuer: {id, name}, issued_at, expires_at}", async () => {
    await withHarness({}, async (h) => {
      const { id, issuer } = await issueInvite(h, "Alice");
      const res = await client(h).get(`/api/invite/${id}`).set("Accept", "application/json");
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {
        issuer: { id: issuer, name: "Alice" },
        issued_at: new Date(h.clock.now()).toISOString(),
        expires_at: new Date(h.clock.now() + DEFAULT_TTL_MS).toISOString(),
      });
      // Looking does not use it up.
      assert.equal((await client(h).get(`/api/invite/${id}`)).status, 200);
    });
  });

  test("answers 404 for an unknown, a used-up, an expired and a revoked invite", async () => {
    await withHarness({}, async (h) => {
      const get = (id: string) => client(h).get(`/api/invite/${encodeURIComponent(id)}`).set("Accept", "application/json");
      assert.equal((await get("Iabcd1234")).status, 404);
      assert.equal((await get("x".repeat(5000))).status, 404);

      const used = await issueInvite(h);
      assert.equal((await accept(h, used.id, "first")).status, 204);
      assert.equal((await get(used.id)).status, 404, "used up");

      const revoked = await issueInvite(h);
      const handle = (await handles(h)).at(-1)?.handle; // the newest; `invites list` judges state by the real clock
      assert.ok(handle, "invites list shows the invite");
      assert.equal((await cli(h, "invites", "revoke", handle)).code, 0);
      assert.equal((await get(revoked.id)).status, 404, "revoked");

      const expiring = await issueInvite(h);
      assert.equal((await get(expiring.id)).status, 200);
      h.clock.advance(DEFAULT_TTL_MS - 1);
      assert.equal((await get(expiring.id)).status, 200, "still live a moment before it expires");
      h.clock.advance(1);
      assert.equal((await get(expiring.id)).status, 404, "expired");
      assert.equal((await accept(h, expiring.id, "late")).status, 404);
    });
  });
});

describe("invitation API: POST /api/invite/:id", () => {
  test("accepting answers 204 with an HttpOnly, SameSite=Strict identity cookie that logs the new account in", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const res = await accept(h, id, "Blake");
      assert.equal(res.status, 204, res.text);
      assert.equal(res.text, "");
      const cookie = identityCookie(res);
      assert.ok(cookie, "Set-Cookie identity=…");
      assert.match(cookie.line, /;\s*httponly/i);
      assert.match(cookie.line, /;\s*samesite=strict/i);
      assert.doesNotMatch(cookie.line, /;\s*secure/i, "not Secure while publicUrl is plain HTTP");
      assert.ok(Buffer.from(cookie.value, "base64url").length >= 16, "the session token has at least 128 bits");

      const who = await me(h, cookie.pair);
      assert.equal(who.status, 200);
      assert.equal(who.body.name, "blake");
      assert.match(who.body.id, /\S/);
      assert.deepEqual(await accountNames(h), ["blake"]);
    });
  });

  test("the identity cookie is Secure when publicUrl is https", async () => {
    await withHarness({ publicUrl: "https://gatehouse.test" }, async (h) => {
      const { id } = await issueInvite(h);
      assert.equal((await client(h).get(`/api/invite/${id}`)).status, 200);
      const res = await accept(h, id, "blake");
      assert.equal(res.status, 204, res.text);
      const cookie = identityCookie(res);
      assert.ok(cookie, "Set-Cookie identity=…");
      assert.match(cookie.line, /;\s*secure/i);
      assert.match(cookie.line, /;\s*httponly/i);
      assert.match(cookie.line, /;\s*samesite=strict/i);
      // Logging in and out sets it the same way.
      const loggedIn = identityCookie(await login(h, "blake", PASSWORD));
      assert.match(loggedIn?.line ?? "", /;\s*secure/i);
      const loggedOut = identityCookie(await client(h).post("/api/auth/logout").set("Cookie", cookie.pair));
      assert.match(loggedOut?.line ?? "", /;\s*secure/i);
    });
  });

  test("a bad name (406), a short password (400), a reserved name (403) and a taken name (409) leave the invite usable", async () => {
    await withHarness({}, async (h) => {
      await invitedAccount(h, "taken");
      const pending = await postRegistration(h, registration({ username: "pending" }));
      assert.equal(pending.status, 200, pending.text);

      const { id } = await issueInvite(h);
      const refusals: [string, string, number][] = [
        ["a b", PASSWORD, 406],
        ["x@y", PASSWORD, 406],
        ["", PASSWORD, 406],
        ["newname", "short", 400],
        ["admin", PASSWORD, 403],
        ["taken", PASSWORD, 409],
        ["TAKEN", PASSWORD, 409],
        ["pending", PASSWORD, 409],
      ];
      for (const [name, password, status] of refusals) {
        const res = await accept(h, id, name, password);
        assert.equal(res.status, status, `${JSON.stringify(name)}: ${res.text}`);
        assert.equal(identityCookie(res), null, `${JSON.stringify(name)} sets no cookie`);
      }
      assert.equal((await client(h).get(`/api/invite/${id}`)).status, 200, "the invite is still live");
      assert.deepEqual(await accountNames(h), ["taken"]);

      const second = await accept(h, id, "another");
      assert.equal(second.status, 204, second.text);
      assert.deepEqual(await accountNames(h), ["another", "taken"]);
    });
  });

  test("bodies that are not a JSON object are answered 415 or 400 and use nothing", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const path = `/api/invite/${id}`;
      const sends: [string, () => ReturnType<ReturnType<typeof client>["post"]>][] = [
        ["no body", () => client(h).post(path)],
        ["a form", () => client(h).post(path).type("form").send({ name: "form", password: PASSWORD })],
        ["text/plain JSON", () => client(h).post(path).set("Content-Type", "text/plain").send(JSON.stringify({ name: "txt", password: PASSWORD }))],
        ["broken JSON", () => client(h).post(path).set("Content-Type", "application/json").send("{\"name\":")],
        ["a JSON array", () => client(h).post(path).set("Content-Type", "application/json").send("[1,2]")],
        ["a JSON string", () => client(h).post(path).set("Content-Type", "application/json").send("\"x\"")],
        ["a number as name", () => client(h).post(path).send({ name: 5, password: PASSWORD })],
        ["a missing password", () => client(h).post(path).send({ name: "nopass" })],
        ["invalid UTF-8", () => client(h).post(path).set("Content-Type", "application/json").send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))],
      ];
      for (const [what, send] of sends) {
        const res = await send();
        assert.ok(res.status === 415 || res.status === 400, `${what}: ${res.status} ${res.text}`);
      }
      assert.deepEqual(await accountNames(h), []);
      assert.equal((await accept(h, id, "valid")).status, 204);
    });
  });

  test("a pending registration that has run out no longer holds its name", async () => {
    await withHarness({}, async (h) => {
      assert.equal((await postRegistration(h, registration({ username: "rita" }))).status, 200);
      const { id } = await issueInvite(h);
      assert.equal((await accept(h, id, "rita")).status, 409);
      h.clock.advance(h.config.register.pendingTtlSeconds * 1000 + 1);
      const res = await accept(h, id, "rita");
      assert.equal(res.status, 204, res.text);
      assert.deepEqual(await accountNames(h), ["rita"]);
    });
  });

  test("two concurrent accepts of a two-use invite with the same name make one account and leave one use", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const id = tokenOf((await client(h).get(`${API_PATH}?key=${key}&uses=2`)).headers["location"] as string);
      const answers = await Promise.all([accept(h, id, "sam"), accept(h, id, "sam")]);
      assert.deepEqual(answers.map((r) => r.status).sort(), [204, 409]);
      assert.deepEqual(await accountNames(h), ["sam"]);
      assert.equal((await handles(h))[0]?.uses, "1/2", "the losing accept gave its use back");
      assert.equal((await accept(h, id, "tom")).status, 204);
    });
  });

  test("a two-use invite creates exactly two accounts", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h);
      const created = await client(h).get(`${API_PATH}?key=${key}&uses=2`);
      const id = tokenOf(created.headers["location"] as string);
      assert.equal((await accept(h, id, "one")).status, 204);
      assert.equal((await client(h).get(`/api/invite/${id}`)).status, 200, "one use left");
      assert.equal((await accept(h, id, "two")).status, 204);
      assert.equal((await accept(h, id, "three")).status, 404);
      assert.deepEqual(await accountNames(h), ["one", "two"]);
    });
  });

  test("an invite bound to a username refuses any other name", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      const token = tokenOf((await cli(h, "invites", "create", "--username", "erin")).out[0]!);
      const other = await accept(h, token, "mallory");
      assert.ok(other.status >= 400 && other.status < 500, `${other.status}`);
      assert.notEqual(other.status, 404, "the invite exists; the name is what is wrong");
      assert.deepEqual(await accountNames(h), []);
      assert.equal((await accept(h, token, "erin")).status, 204);
      assert.deepEqual(await accountNames(h), ["erin"]);
      const users = await cli(h, "users", "list");
      assert.match(users.out.find((l) => l.startsWith("erin\t")) ?? "", /\tinvited by /);
    });
  });

  test("of 20 concurrent accepts of a one-use invite with 20 names, exactly one wins", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const names = Array.from({ length: 20 }, (_, i) => `racer${i}`);
      const answers = await Promise.all(names.map((name) => accept(h, id, name)));
      const statuses = answers.map((r) => r.status);
      assert.equal(statuses.filter((s) => s === 204).length, 1, `statuses: ${statuses.join(",")}`);
      assert.equal(statuses.filter((s) => s === 404).length, 19, `statuses: ${statuses.join(",")}`);
      const winner = names[statuses.indexOf(204)];
      assert.deepEqual(await accountNames(h), [winner]);
      assert.equal(answers.filter((r) => identityCookie(r) !== null).length, 1, "only the winner got a session");
      assert.equal((await handles(h))[0]?.uses, "0/1");
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("logins and sessions", () => {
  test("login with the right password: 204 and a cookie; a wrong password and an unknown name: the same 401", async () => {
    await withHarness({}, async (h) => {
      await invitedAccount(h, "carol");
      const ok = await login(h, "Carol", PASSWORD);
      assert.equal(ok.status, 204, ok.text);
      const cookie = identityCookie(ok);
      assert.ok(cookie, "Set-Cookie identity=…");
      assert.match(cookie.line, /;\s*httponly/i);
      assert.match(cookie.line, /;\s*samesite=strict/i);
      assert.equal((await me(h, cookie.pair)).body.name, "carol");

      const wrong = await login(h, "carol", "wrong password");
      const unknown = await login(h, "nobody", "wrong password");
      assert.equal(wrong.status, 401);
      assert.equal(unknown.status, 401);
      assert.deepEqual(unknown.body, wrong.body, "the answers do not tell which was wrong");
      assert.equal(identityCookie(wrong), null);

      const wrongText = await client(h).post("/api/auth/login").send({ name: "carol", password: "wrong password" });
      const unknownText = await client(h).post("/api/auth/login").send({ name: "nobody", password: "wrong password" });
      assert.equal(unknownText.text, wrongText.text);
      assert.equal(unknownText.status, wrongText.status);
    });
  });

  test(`after ${LOGIN_FAILURE_POINTS} failed logins for a name from one address, its next login there is answered 429, even with the right password`, async () => {
    await withHarness({}, async (h) => {
      await invitedAccount(h, "dave");
      for (let i = 0; i < LOGIN_FAILURE_POINTS; i++) {
        assert.equal((await login(h, "dave", `wrong ${i}`)).status, 401, `attempt ${i + 1}`);
      }
      const limited = await login(h, "dave", PASSWORD);
      assert.equal(limited.status, 429, limited.text);
      assert.match(limited.headers["retry-after"] ?? "", /^\d+$/);
      assert.equal(identityCookie(limited), null);
    });
  });

  test("logout answers 204 and the old cookie no longer works", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "erin");
      assert.equal((await me(h, cookie)).status, 200);
      const out = await client(h).post("/api/auth/logout").set("Cookie", cookie);
      assert.equal(out.status, 204);
      const cleared = identityCookie(out);
      assert.ok(cleared, "the cookie is cleared");
      assert.equal(cleared.value, "");
      assert.equal((await me(h, cookie)).status, 401);
      assert.equal((await client(h).post("/api/invite").set("Cookie", cookie)).status, 401);

      // Logging out with another origin's request is refused and keeps the session.
      const { cookie: other } = await invitedAccount(h, "frank");
      const evil = await client(h).post("/api/auth/logout").set("Cookie", other).set("Origin", "https://evil.example");
      assert.equal(evil.status, 403);
      assert.equal((await me(h, other)).status, 200);
    });
  });

  test("a session expires when it is not used for SESSION_TTL_MS, and use keeps it alive", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "gina");
      const day = 24 * 3600 * 1000;
      h.clock.advance(SESSION_TTL_MS - day);
      assert.equal((await me(h, cookie)).status, 200, "still valid a day before it runs out; this use extends it");
      h.clock.advance(SESSION_TTL_MS - day);
      assert.equal((await me(h, cookie)).status, 200, "extended by the last use");

      const { cookie: idle } = await invitedAccount(h, "hank");
      h.clock.advance(SESSION_TTL_MS + 1);
      assert.equal((await me(h, idle)).status, 401);
      assert.equal((await me(h, cookie)).status, 401);
    });
  });

  test("deleting an account ends its sessions", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "uma");
      assert.equal((await me(h, cookie)).status, 200);
      assert.equal((await cli(h, "users", "delete", "uma")).code, 0);
      assert.equal((await me(h, cookie)).status, 401);
      assert.equal((await client(h).post("/api/invite").set("Cookie", cookie)).status, 401);
    });
  });

  test("GET /api/me without a cookie, or with garbage, is 401", async () => {
    await withHarness({}, async (h) => {
      assert.equal((await me(h)).status, 401);
      assert.equal((await me(h, "identity=")).status, 401);
      assert.equal((await me(h, `identity=${"x".repeat(4000)}`)).status, 401);
    });
  });

  test("users list says who invited each invited account", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      await invitedAccount(h, "ivan", "Partner site");
      const adminInvite = tokenOf((await cli(h, "invites", "create")).out[0]!);
      assert.equal((await accept(h, adminInvite, "judy")).status, 204);
      const users = await cli(h, "users", "list");
      assert.equal(users.code, 0);
      assert.match(users.out.find((l) => l.startsWith("ivan\t")) ?? "", /\tinvited by Partner site$/);
      assert.match(users.out.find((l) => l.startsWith("judy\t")) ?? "", /\tinvited by \S/);
    });
  });

  test("session tokens, invite tokens and key secrets are not in the SQLite file or its WAL in the clear", async () => {
    await withHarness({}, async (h) => {
      const { id: inviteToken, key } = await issueInvite(h);
      const secret = key.split("/")[1]!;
      const accepted = await accept(h, inviteToken, "kate");
      const acceptCookie = identityCookie(accepted)!.value;
      const loginCookie = identityCookie(await login(h, "kate", PASSWORD))!.value;
      const unused = await issueInvite(h);
      assert.ok(databaseContains(h, "kate"), "sanity: the search sees what is stored");
      for (const [what, value] of [
        ["invite token (used)", inviteToken],
        ["invite token (live)", unused.id],
        ["session token from accepting", acceptCookie],
        ["session token from login", loginCookie],
        ["API key secret", secret],
        ["password", PASSWORD],
      ] as const) {
        assert.ok(value.length >= 16, what);
        assert.ok(!databaseContains(h, value), `${what} is not stored in the clear`);
      }
      const logged = h.logs.text();
      for (const value of [inviteToken, unused.id, acceptCookie, loginCookie, secret, PASSWORD]) {
        assert.ok(!logged.includes(value), "and not logged either");
      }
    });
  });
});

// ---------------------------------------------------------------------------------------------
describe("the invite page (/invite/:token)", () => {
  const SECURITY_HEADERS = (res: { headers: Record<string, string> }, what: string) => {
    assert.match(res.headers["content-security-policy"] ?? "", /\S/, `${what}: Content-Security-Policy`);
    assert.equal(res.headers["x-content-type-options"], "nosniff", what);
    assert.equal(res.headers["referrer-policy"], "no-referrer", what);
  };
  const NO_STACK = (text: string, what: string) => {
    assert.doesNotMatch(text, /\bat \S+ \(|node_modules|Error:|\.ts:\d+/, `${what}: no stack trace`);
  };
  const inputValue = (html: string, name: string) => new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(html)?.[0] ?? "";

  test("GET /invite/:token and /invite?TOKEN show the issuer and a username/password form, with the security headers", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h, "Alice");
      for (const path of [`/invite/${id}`, `/invite?${id}`]) {
        const res = await client(h).get(path);
        assert.equal(res.status, 200, path);
        assert.match(res.headers["content-type"] as string, /^text\/html/);
        assert.match(res.text, /Alice/, `${path}: names the issuer`);
        assert.match(res.text, /gatehouse\.test/, `${path}: names the site`);
        assert.match(res.text, /<form[^>]*method="post"/i);
        assert.match(res.text, new RegExp(`<form[^>]*action="/invite/${id}"`));
        assert.ok(inputValue(res.text, "username"), `${path}: a username field`);
        assert.match(inputValue(res.text, "password"), /type="password"/);
        assert.doesNotMatch(res.text, /<script/i, "works without JavaScript");
        SECURITY_HEADERS(res, path);
      }
    });
  });

  test("POST /invite/:token with the form creates the account, shows success and sets the identity cookie", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h, "Alice");
      const res = await client(h).post(`/invite/${id}`).type("form").send({ username: "Lena", password: PASSWORD });
      assert.equal(res.status, 200, res.text);
      assert.match(res.text, /lena/);
      assert.match(res.text, /Welcome/);
      SECURITY_HEADERS(res, "success page");
      const cookie = identityCookie(res);
      assert.ok(cookie, "Set-Cookie identity=…");
      assert.match(cookie.line, /;\s*httponly/i);
      assert.match(cookie.line, /;\s*samesite=strict/i);
      assert.equal((await me(h, cookie.pair)).body.name, "lena");
      assert.deepEqual(await accountNames(h), ["lena"]);

      // Spent now: the page says so clearly.
      const again = await client(h).get(`/invite/${id}`);
      assert.ok(again.status === 404 || again.status === 410, `${again.status}`);
    });
  });

  test("a taken name, an invalid name or a short password show the form again with the reason and the typed name", async () => {
    await withHarness({}, async (h) => {
      await invitedAccount(h, "taken");
      const { id } = await issueInvite(h, "Alice");
      const cases: [string, string, number, RegExp][] = [
        ["taken", PASSWORD, 409, /taken/i],
        ["a b", PASSWORD, 406, /./],
        ["mike", "short", 400, /at least 8/],
      ];
      for (const [username, password, status, reason] of cases) {
        const res = await client(h).post(`/invite/${id}`).type("form").send({ username, password });
        assert.equal(res.status, status, `${username}: ${res.status}`);
        assert.match(res.headers["content-type"] as string, /^text\/html/);
        assert.match(res.text, /class="error"/, `${username}: an error is shown`);
        assert.match(res.text, reason, `${username}: the reason`);
        assert.match(inputValue(res.text, "username"), new RegExp(`value="${username}"`), `${username}: the name is kept`);
        assert.equal(inputValue(res.text, "password").includes(password), false, "the password is not echoed");
        assert.equal(identityCookie(res), null);
        SECURITY_HEADERS(res, `${username} refusal`);
        NO_STACK(res.text, username);
      }
      assert.equal((await client(h).get(`/invite/${id}`)).status, 200, "the invite is still usable");
      const ok = await client(h).post(`/invite/${id}`).type("form").send({ username: "mike", password: PASSWORD });
      assert.equal(ok.status, 200);
      assert.deepEqual(await accountNames(h), ["mike", "taken"]);
    });
  });

  test("what the person typed is escaped when the form comes back", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const res = await client(h).post(`/invite/${id}`).type("form").send({ username: "\"><script>x</script>", password: PASSWORD });
      assert.equal(res.status, 406);
      assert.doesNotMatch(res.text, /<script>x<\/script>/);
      assert.match(res.text, /&lt;script&gt;/);
    });
  });

  test("a used, revoked, expired or unknown invite gets a clear page with 404 or 410, not a stack trace", async () => {
    await withHarness({}, async (h) => {
      const used = await issueInvite(h);
      assert.equal((await accept(h, used.id, "first")).status, 204);
      const revoked = await issueInvite(h);
      const handle = (await handles(h)).at(-1)!.handle;
      assert.equal((await cli(h, "invites", "revoke", handle)).code, 0);
      const expired = await issueInvite(h);
      h.clock.advance(DEFAULT_TTL_MS + 1000);

      const cases: [string, string, RegExp][] = [
        ["used", used.id, /already been used/],
        ["revoked", revoked.id, /withdrawn/],
        ["expired", expired.id, /expired/],
        ["unknown", "Iabcd1234", /does not exist/],
      ];
      for (const [what, token, message] of cases) {
        for (const res of [
          await client(h).get(`/invite/${token}`),
          await client(h).get(`/invite?${token}`),
          await client(h).post(`/invite/${token}`).type("form").send({ username: `late${what}`, password: PASSWORD }),
        ]) {
          assert.ok(res.status === 404 || res.status === 410, `${what}: ${res.status}`);
          assert.match(res.headers["content-type"] as string, /^text\/html/, what);
          assert.match(res.text, message, `${what}: says why`);
          assert.doesNotMatch(res.text, /<form/, `${what}: no signup form`);
          NO_STACK(res.text, what);
          SECURITY_HEADERS(res, what);
        }
      }
      assert.equal((await client(h).get(`/invite/${used.id}`)).status, 410);
      assert.equal((await client(h).get("/invite/Iabcd1234")).status, 404);
      assert.deepEqual(await accountNames(h), ["first"]);
    });
  });

  test("odd invite links are answered 404, never 500", async () => {
    await withHarness({}, async (h) => {
      for (const path of ["/invite", "/invite?", "/invite?%E0%A4%A", "/invite?%", "/invite/%E0%A4%A", "/invite/%", `/invite/${"x".repeat(3000)}`]) {
        const res = await client(h).get(path);
        assert.equal(res.status, 404, `${path}: ${res.status}`);
        NO_STACK(res.text, path);
      }
      const posted = await client(h).post("/invite/%E0%A4%A").type("form").send({ username: "x", password: PASSWORD });
      assert.ok(posted.status === 404 || posted.status === 400, `POST: ${posted.status}`);
      for (const path of ["/api/invite/%E0%A4%A", "/api/invite/%"]) {
        assert.equal((await client(h).get(path)).status, 404, `GET ${path}`);
        assert.equal((await client(h).post(path).send({ name: "x", password: PASSWORD })).status, 404, `POST ${path}`);
      }
    });
  });

  test("an invite bound to a username shows that name, read-only", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      const token = tokenOf((await cli(h, "invites", "create", "--username", "nina")).out[0]!);
      const page = await client(h).get(`/invite/${token}`);
      assert.equal(page.status, 200);
      const input = inputValue(page.text, "username");
      assert.match(input, /value="nina"/);
      assert.match(input, /readonly/);
      const other = await client(h).post(`/invite/${token}`).type("form").send({ username: "oscar", password: PASSWORD });
      assert.equal(other.status, 403);
      assert.match(other.text, /nina/);
      assert.deepEqual(await accountNames(h), []);
    });
  });

  test("a form posted from another origin is refused and creates nothing", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const res = await client(h).post(`/invite/${id}`).set("Origin", "https://evil.example").type("form").send({ username: "pat", password: PASSWORD });
      assert.equal(res.status, 403);
      assert.deepEqual(await accountNames(h), []);
      assert.equal((await client(h).get(`/invite/${id}`)).status, 200);
    });
  });

  test("the form posted by a browser from the page itself works, though no-referrer makes its Origin null", async () => {
    await withHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      // What Chromium sends for a same-origin form under Referrer-Policy: no-referrer.
      const refusedFirst = await client(h)
        .post(`/invite/${id}`)
        .set("Origin", "null")
        .set("Sec-Fetch-Site", "cross-site")
        .type("form")
        .send({ username: "pat", password: PASSWORD });
      assert.equal(refusedFirst.status, 403, "a cross-site post is refused");
      const res = await client(h)
        .post(`/invite/${id}`)
        .set("Origin", "null")
        .set("Sec-Fetch-Site", "same-origin")
        .type("form")
        .send({ username: "pat", password: PASSWORD });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(await accountNames(h), ["pat"]);
    });
  });

  test("the issuer's name is HTML-escaped on the page", async () => {
    await withHarness({}, async (h) => {
      const { key } = await createKey(h, "<script>alert(1)</script>");
      const created = await client(h).get(`${API_PATH}?key=${encodeURIComponent(key)}`);
      assert.equal(created.status, 201);
      const page = await client(h).get(`/invite/${tokenOf(created.headers["location"] as string)}`);
      assert.equal(page.status, 200);
      assert.ok(!page.text.includes("<script>alert(1)</script>"), "the name is not markup");
      assert.ok(page.text.includes("&lt;script&gt;alert(1)&lt;/script&gt;"), "the name is shown, escaped");
      assert.match(page.headers["content-security-policy"] ?? "", /default-src 'none'|script-src 'none'/);
    });
  });
});
