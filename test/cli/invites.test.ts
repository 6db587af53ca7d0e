import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withHarness } from "../helpers/harness.ts";
import {
  accept,
  accountNames,
  cli,
  client,
  databaseContains,
  handles,
  INVITE_URL,
  tokenOf,
} from "../helpers/invites.ts";

// DESIGN.md §5: invites made, listed and revoked from the command line.

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
