import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { LOGIN_FAILURE_POINTS } from "../../src/domain/limiter.ts";
import { SESSION_TTL_MS } from "../../src/domain/sessions.ts";
import { withHarness } from "../helpers/harness.ts";
import {
  accept,
  cli,
  client,
  databaseContains,
  identityCookie,
  invitedAccount,
  issueInvite,
  login,
  me,
  PASSWORD,
  tokenOf,
} from "../helpers/invites.ts";
import { describeAuthRefusals, refusedAlike, SESSION } from "../helpers/refusals.ts";

// DESIGN.md §5: logins and sessions: /api/auth/login, /api/auth/logout, /api/me.

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

  test("users list says who invited each invited account", async () => {
    await withHarness({}, async (h) => {
      h.clock.t = Date.now();
      await invitedAccount(h, "ivan", "Partner site");
      const adminInvite = tokenOf((await cli(h, "invites", "create")).out[0]!);
      assert.equal((await accept(h, adminInvite, "judy")).status, 204);
      const users = await cli(h, "users", "list");
      assert.equal(users.code, 0);
      assert.equal(users.out[0], "NAME\tCREATED\tMAIL\tINVITED BY\tACCOUNT SERVERS");
      assert.equal(users.out.find((l) => l.startsWith("ivan\t"))?.split("\t")[3], "key:Partner site");
      assert.equal(users.out.find((l) => l.startsWith("judy\t"))?.split("\t")[3], "admin");
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

describeAuthRefusals({
  ...SESSION,
  name: "GET /api/me with the identity cookie",
  accepted: 200,
  send: (h, token) => me(h, token === undefined ? undefined : `identity=${token}`),
  refused: refusedAlike({ status: 401, code: "UNAUTHENTICATED" }),
});
