import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withHarness } from "../helpers/harness.ts";
import { accept, API_PATH, client, createKey, DEFAULT_TTL_MS, handles, INVITE_URL, tokenOf } from "../helpers/invites.ts";
import { API_KEY, describeAuthRefusals, refusedAlike } from "../helpers/refusals.ts";

// DESIGN.md §5: mod_invites_api, GET/POST {invites.apiPath} with an API key.

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

/** mod_invites_api answers every refusal 403, a missing key too, and never with a Location. */
const INVITES_API = {
  ...API_KEY,
  accepted: 201,
  refused: refusedAlike({ status: 403, code: "API_KEY_INVALID" }),
  checkRefusal(res: { headers: Record<string, string> }, what: string) {
    assert.equal(res.headers["location"], undefined, `${what}: no Location`);
  },
};

describeAuthRefusals({
  ...INVITES_API,
  name: "GET /invites_api?key=ID/SECRET&uses=1&redirect=true",
  accepted: 303,
  send: (h, key) => {
    const query = key === undefined ? "uses=1&redirect=true" : `key=${encodeURIComponent(key)}&uses=1&redirect=true`;
    return client(h).get(`${API_PATH}?${query}`).set("Accept", "application/json").redirects(0);
  },
});

describeAuthRefusals({
  ...INVITES_API,
  name: "POST /invites_api with Authorization: Bearer ID/SECRET",
  send: (h, key) => {
    const req = client(h).post(API_PATH).set("Accept", "application/json");
    return key === undefined ? req : req.set("Authorization", `Bearer ${key}`);
  },
});
