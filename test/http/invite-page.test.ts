import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withHarness } from "../helpers/harness.ts";
import { databaseRows } from "../helpers/refusals.ts";
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
  me,
  PASSWORD,
  tokenOf,
} from "../helpers/invites.ts";

// DESIGN.md §5: the invite page, /invite/:token.

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

  test("the page is in the language asked for, and the account keeps the language it was accepted in", async () => {
    await withHarness({ languages: ["en", "de", "fr", "es"] }, async (h) => {
      const { id } = await issueInvite(h, "Alice");
      const page = await client(h).get(`/invite/${id}?lang=es`);
      assert.equal(page.status, 200);
      assert.match(page.text, /<html lang="es">/);
      assert.match(page.text, /Invitación de <strong id="issuer">Alice<\/strong>/);
      assert.match(page.text, /<form method="post" action="\/invite\/[^"]+\?lang&#x3D;es">/);
      const done = await client(h).post(`/invite/${id}?lang=es`).type("form").send({ username: "sofia", password: PASSWORD });
      assert.equal(done.status, 200);
      assert.match(done.text, /Le damos la bienvenida, sofia/);
      const german = await issueInvite(h, "Alice");
      const byHeader = await client(h).post(`/invite/${german.id}`).set("accept-language", "de-CH").type("form").send({ username: "dora", password: PASSWORD });
      assert.equal(byHeader.status, 200);
      assert.match(byHeader.text, /<html lang="de">/);
      const langs = Object.fromEntries((databaseRows(h)["users"] as { username: string; lang: string | null }[]).map((u) => [u.username, u.lang]));
      assert.deepEqual(langs, { sofia: "es", dora: "de" });
    });
  });
});
