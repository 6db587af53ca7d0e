import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { postRegistration, registration, withHarness } from "../helpers/harness.ts";
import {
  accept,
  accountNames,
  API_PATH,
  cli,
  client,
  createKey,
  DEFAULT_TTL_MS,
  handles,
  identityCookie,
  invitedAccount,
  issueInvite,
  login,
  me,
  PASSWORD,
  PUBLIC_URL,
  tokenOf,
} from "../helpers/invites.ts";
import { API_KEY, databaseRows, describeAuthRefusals, refusedAlike, SESSION } from "../helpers/refusals.ts";

// DESIGN.md §5: pilcrow's invitation API, /api/invite and /api/invite/:id.

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
      assert.equal(blake?.split("\t")[3], "andrea");
    });
  });

  test("a wrong key beside a valid cookie is 403, not passed over for the cookie; a cookie sent cross-site is 403", async () => {
    await withHarness({}, async (h) => {
      const { cookie } = await invitedAccount(h, "andrea");
      const before = databaseRows(h);

      const wrongKey = await client(h).post("/api/invite").set("Authorization", "Bearer nope/nope").set("Cookie", cookie);
      assert.equal(wrongKey.status, 403, "a wrong key is refused, not passed over for the cookie");

      const evil = await client(h).post("/api/invite").set("Cookie", cookie).set("Origin", "https://evil.example").send({});
      assert.equal(evil.status, 403, evil.text);

      const crossSite = await client(h).post("/api/invite").set("Cookie", cookie).set("Sec-Fetch-Site", "cross-site").send({});
      assert.equal(crossSite.status, 403, crossSite.text);

      assert.deepEqual(databaseRows(h), before, "no refused request created an invite or changed anything else");
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
      assert.equal(users.out.find((l) => l.startsWith("erin\t"))?.split("\t")[3], "admin");
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

const UNAUTHENTICATED = { status: 401, code: "UNAUTHENTICATED" };
const API_KEY_INVALID = { status: 403, code: "API_KEY_INVALID" };

describeAuthRefusals({
  ...API_KEY,
  name: "POST /api/invite with Authorization: Bearer ID/SECRET",
  accepted: 200,
  send: (h, key) => {
    const req = client(h).post("/api/invite").set("Accept", "application/json");
    return key === undefined ? req : req.set("Authorization", `Bearer ${key}`);
  },
  // Without a key the endpoint looks for a login, so no key at all is "log in first".
  refused: { missing: UNAUTHENTICATED, wrong: API_KEY_INVALID, malformed: API_KEY_INVALID, withdrawn: API_KEY_INVALID },
  // "Bearer " with nothing after it carries no key either.
  except: { "an empty credential": UNAUTHENTICATED },
});

describeAuthRefusals({
  ...SESSION,
  name: "POST /api/invite with the identity cookie",
  accepted: 200,
  send: (h, token) => {
    const req = client(h).post("/api/invite").set("Accept", "application/json");
    return token === undefined ? req : req.set("Cookie", `identity=${token}`);
  },
  refused: refusedAlike(UNAUTHENTICATED),
});
