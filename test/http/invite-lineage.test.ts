import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { startHttpTarget } from "../helpers/http-target.ts";
import { withHarness, type Harness } from "../helpers/harness.ts";
import { accept, API_PATH, cli, client, createKey, identityCookie, login, PASSWORD, tokenOf } from "../helpers/invites.ts";
import { databaseRows } from "../helpers/refusals.ts";

// DESIGN §11 "Invite quotas and lineage", end to end over HTTP on a real SQLite file: invites an
// account makes with its login cookie count against invites.perUser; every invited account records
// who invited it; `invites tree` draws the lineage; `users delete --with-invitees` removes a subtree.

const DAY = 24 * 3600 * 1000;
const T0_LABEL = "2026-01-01 00:00 UTC";

/** An account made from an invite the command line issued, accepted on the invite page (a form, no JavaScript). */
async function adminInvited(h: Harness, name: string): Promise<void> {
  const created = await cli(h, "invites", "create");
  assert.equal(created.code, 0, created.err.join("\n"));
  const res = await client(h).post(`/invite/${tokenOf(created.out[0]!)}`).type("form").send({ username: name, password: PASSWORD });
  assert.equal(res.status, 200, res.text);
}

/** Logs in through POST /api/auth/login and returns the cookie pair. */
async function loggedIn(h: Harness, name: string): Promise<string> {
  const res = await login(h, name, PASSWORD);
  assert.equal(res.status, 204, res.text);
  return identityCookie(res)!.pair;
}

/** POST /api/invite with a login cookie, as pilcrow's client sends it. */
function inviteWithCookie(h: Harness, cookie: string) {
  return client(h).post("/api/invite").set("Cookie", cookie).set("Accept", "application/json");
}

/** `name` invites `invitee` with its login cookie; the invitee accepts through the API or the invite page. */
async function invites(h: Harness, cookie: string, invitee: string, via: "api" | "page"): Promise<void> {
  const made = await inviteWithCookie(h, cookie);
  assert.equal(made.status, 200, made.text);
  const res = via === "api"
    ? await accept(h, made.body.id as string, invitee)
    : await client(h).post(`/invite/${encodeURIComponent(made.body.id as string)}`).type("form").send({ username: invitee, password: PASSWORD });
  assert.equal(res.status, via === "api" ? 204 : 200, res.text);
}

describe("invite quotas (invites.perUser)", () => {
  test("over the quota a logged-in account gets 429 with the reason and Retry-After until its oldest invite leaves the window; nothing is stored", async () => {
    await withHarness({ invites: { perUser: { max: 2, perDays: 7 } } }, async (h) => {
      await adminInvited(h, "ada");
      await adminInvited(h, "bea");
      const ada = await loggedIn(h, "ada");
      assert.equal((await inviteWithCookie(h, ada)).status, 200);
      h.clock.advance(DAY);
      assert.equal((await inviteWithCookie(h, ada)).status, 200);

      const before = databaseRows(h);
      const refused = await inviteWithCookie(h, ada);
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.body.error, "INVITE_QUOTA_EXCEEDED");
      assert.match(refused.body.message, /2 invites per 7 days/);
      assert.match(refused.body.message, /2026-01-08T00:00:00\.000Z/, "it says when the next invite is possible");
      assert.equal(refused.headers["retry-after"], String(6 * 24 * 3600), "the first invite leaves the 7-day window 6 days from now");
      assert.deepEqual(databaseRows(h), before, "a refused invite changes nothing stored");

      // Another account's quota is its own.
      assert.equal((await inviteWithCookie(h, await loggedIn(h, "bea"))).status, 200);

      h.clock.advance(6 * DAY - 1000);
      assert.equal((await inviteWithCookie(h, ada)).status, 429, "one second before the window frees a place");
      h.clock.advance(1000);
      const again = await inviteWithCookie(h, ada);
      assert.equal(again.status, 200, again.text);
      assert.equal((await accept(h, again.body.id as string, "cid")).status, 204, "the invite made after the wait works");
    });
  });

  test("an account younger than minAccountAgeDays gets 403 with the reason, and may invite once it is old enough", async () => {
    await withHarness({ invites: { perUser: { minAccountAgeDays: 3 } } }, async (h) => {
      await adminInvited(h, "dee");
      h.clock.advance(3 * DAY - 1);
      const dee = await loggedIn(h, "dee");
      const before = databaseRows(h);
      const young = await inviteWithCookie(h, dee);
      assert.equal(young.status, 403, young.text);
      assert.equal(young.body.error, "ACCOUNT_TOO_NEW");
      assert.match(young.body.message, /3 days old/);
      assert.match(young.body.message, /2026-01-04T00:00:00\.000Z/);
      assert.deepEqual(databaseRows(h), before, "a refused invite changes nothing stored");
      h.clock.advance(1);
      assert.equal((await inviteWithCookie(h, dee)).status, 200);
    });
  });

  test("API keys (both APIs), the command line and the accounts in exempt are not limited", async () => {
    await withHarness({ invites: { perUser: { max: 1, perDays: 30, minAccountAgeDays: 10, exempt: ["Staff"] } } }, async (h) => {
      const { key } = await createKey(h, "Partner site");
      for (let i = 0; i < 3; i++) {
        const pilcrow = await client(h).post("/api/invite").set("Authorization", `Bearer ${key}`);
        assert.equal(pilcrow.status, 200, pilcrow.text);
        const prosody = await client(h).post(API_PATH).set("Authorization", `Bearer ${key}`);
        assert.equal(prosody.status, 201, prosody.text);
        assert.equal((await cli(h, "invites", "create")).code, 0);
      }
      await adminInvited(h, "staff");
      await adminInvited(h, "gus");
      const staff = await loggedIn(h, "staff");
      for (let i = 0; i < 3; i++) assert.equal((await inviteWithCookie(h, staff)).status, 200, "an exempt account, young as it is");
      assert.equal((await inviteWithCookie(h, await loggedIn(h, "gus"))).status, 403, "the rule holds for the others");
    });
  });
});

describe("invite lineage", () => {
  test("every invite path records the inviter; invites tree draws who invited whom with creation dates; users list shows it under a header", async () => {
    await withHarness({}, async (h) => {
      await adminInvited(h, "ada");
      const ada = await loggedIn(h, "ada");
      h.clock.advance(DAY);
      await invites(h, ada, "ben", "page");
      const ben = await loggedIn(h, "ben");
      h.clock.advance(DAY);
      await invites(h, ben, "cal", "api");
      h.clock.advance(DAY);
      await invites(h, ada, "dan", "api");
      // mod_invites_api's invite, accepted on the invite page.
      const { key } = await createKey(h, "Partner site");
      const made = await client(h).get(`${API_PATH}?key=${encodeURIComponent(key)}`);
      assert.equal(made.status, 201, made.text);
      const kim = await client(h).post(new URL(made.headers["location"]!).pathname).type("form").send({ username: "kim", password: PASSWORD });
      assert.equal(kim.status, 200, kim.text);

      const tree = await cli(h, "invites", "tree");
      assert.equal(tree.code, 0, tree.err.join("\n"));
      assert.deepEqual(tree.out, [
        `ada  ${T0_LABEL}  invited by admin`,
        "├── ben  2026-01-02 00:00 UTC",
        "│   └── cal  2026-01-03 00:00 UTC",
        "└── dan  2026-01-04 00:00 UTC",
        "kim  2026-01-04 00:00 UTC  invited by key:Partner site",
      ]);
      assert.deepEqual((await cli(h, "invites", "tree", "Ben")).out, [
        "ben  2026-01-02 00:00 UTC  invited by ada",
        "└── cal  2026-01-03 00:00 UTC",
      ]);
      const unknown = await cli(h, "invites", "tree", "nobody");
      assert.equal(unknown.code, 1);
      assert.match(unknown.err.join("\n"), /no account named "nobody"/);

      const users = await cli(h, "users", "list");
      assert.equal(users.code, 0, users.err.join("\n"));
      assert.deepEqual(users.out[0]!.split("\t"), ["NAME", "CREATED", "MAIL", "INVITED BY", "ACCOUNT SERVERS"]);
      assert.deepEqual(users.out.slice(1).map((line) => [line.split("\t")[0], line.split("\t")[3]]), [
        ["ada", "admin"], ["ben", "ada"], ["cal", "ben"], ["dan", "ada"], ["kim", "key:Partner site"],
      ]);
    });
  });

  test("deleting an inviter without --with-invitees keeps its invitees, which still name it; a newcomer under its name is not their inviter", async () => {
    await withHarness({}, async (h) => {
      await adminInvited(h, "ada");
      await invites(h, await loggedIn(h, "ada"), "ben", "api");
      assert.deepEqual((await cli(h, "users", "delete", "ada")).out, ["deleted ada"]);
      h.clock.advance(DAY);
      await adminInvited(h, "ada");
      assert.deepEqual((await cli(h, "invites", "tree")).out, [
        `ben  ${T0_LABEL}  invited by ada (deleted)`,
        "ada  2026-01-02 00:00 UTC  invited by admin",
      ]);
      const users = await cli(h, "users", "list");
      assert.deepEqual(users.out.slice(1).map((line) => line.split("\t")[3]), ["admin", "ada (deleted)"]);
    });
  });

  test("users delete --with-invitees --dry-run lists the subtree and changes nothing; without --dry-run the subtree goes, from every account server too", async () => {
    const target = await startHttpTarget();
    try {
      await withHarness({
        accounts: { provisionWaitMs: 0, provision: [{ type: "http", name: "site", url: `${target.url()}/accounts`, secret: target.secret, timeoutMs: 2000 }] },
      }, async (h) => {
        // The target checks each signature against the wall clock.
        h.clock.t = Date.now();
        await adminInvited(h, "ada");
        await invites(h, await loggedIn(h, "ada"), "ben", "api");
        const ben = await loggedIn(h, "ben");
        await invites(h, ben, "cal", "page");
        await invites(h, ben, "cay", "api");
        await invites(h, await loggedIn(h, "cal"), "dot", "api");
        await adminInvited(h, "zed");
        // An invite of the ring not used yet, and one of ada's outside it.
        const dotsInvite = await inviteWithCookie(h, await loggedIn(h, "dot"));
        const adasInvite = await inviteWithCookie(h, await loggedIn(h, "ada"));
        await h.outbox.drain();
        assert.deepEqual([...target.accounts.keys()].sort(), ["ada", "ben", "cal", "cay", "dot", "zed"]);

        const before = databaseRows(h);
        const dry = await cli(h, "users", "delete", "ben", "--with-invitees", "--dry-run");
        assert.equal(dry.code, 0, dry.err.join("\n"));
        assert.equal(dry.out.length, 5, dry.out.join("\n"));
        assert.match(dry.out[0]!, /^ben  \d{4}-\d\d-\d\d \d\d:\d\d UTC  invited by ada$/);
        assert.match(dry.out[1]!, /^├── cal  /);
        assert.match(dry.out[2]!, /^│   └── dot  /);
        assert.match(dry.out[3]!, /^└── cay  /);
        assert.equal(dry.out[4], "dry run: 4 accounts would be deleted and 1 unused invite they made withdrawn; nothing was changed");
        assert.deepEqual(databaseRows(h), before, "a dry run changes nothing stored");

        const keep = await cli(h, "users", "delete", "ben", "--dry-run");
        assert.equal(keep.out.at(-1), "dry run: ben would be deleted; the 3 accounts it invited would stay; nothing was changed");
        assert.deepEqual(databaseRows(h), before);

        const done = await cli(h, "users", "delete", "Ben", "--with-invitees");
        assert.equal(done.code, 0, done.err.join("\n"));
        // Invitees go before their inviter (dot before cal, all before ben): cut off halfway, the same command finishes.
        assert.deepEqual(done.out, ["deleted cay", "deleted dot", "deleted cal", "deleted ben", "withdrew 1 unused invite they had made"]);
        assert.deepEqual((await cli(h, "invites", "tree")).out.map((line) => line.split("  ")[0]), ["ada", "zed"]);
        // The remove jobs were queued by the command (on the wall clock); the service's sender runs them.
        h.clock.t = Date.now();
        await h.outbox.drain();
        assert.deepEqual([...target.accounts.keys()].sort(), ["ada", "zed"]);
        assert.equal((await login(h, "dot", PASSWORD)).status, 401);

        const gone = await cli(h, "users", "delete", "ben", "--with-invitees");
        assert.equal(gone.code, 1);
        assert.match(gone.err.join("\n"), /no account named "ben"/);

        assert.equal((await accept(h, dotsInvite.body.id as string, "spam1")).status, 404, "the ring cannot grow back through its invites");
        assert.equal((await accept(h, adasInvite.body.id as string, "eli")).status, 204, "invites outside the subtree stay");
      });
    } finally {
      await target.stop();
    }
  });
});
