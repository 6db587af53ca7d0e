import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { connectStore, openStore } from "../src/store/open.ts";
import type {
  AccountSummary,
  NewInvite,
  NewOutboxItem,
  NewPending,
  OutboxItem,
  Store,
} from "../src/store/store.ts";

// STYLE.md "Boundaries": both backends pass one shared contract suite. Every test gets an empty
// database of its own (a temporary SQLite file, or a fresh PostgreSQL schema) and a fixed clock.

interface StoreFixture {
  /** A store on the fixture's database; migrated unless asked otherwise. */
  store: Store;
  /** Another instance on the same database, as a second process would have; not migrated by this call. */
  connect(): Promise<Store>;
  /** Closes every instance and removes the database. */
  dispose(): Promise<void>;
}

type MakeStore = (options?: { migrated?: boolean }) => Promise<StoreFixture>;

const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

let counter = 0;

function pending(fields: Partial<NewPending> = {}): NewPending {
  counter += 1;
  return {
    username: `user${counter}`,
    passwordHash: `argon2-hash-${counter}`,
    mailHash: `mail-hash-${counter}`,
    tokenHash: `token-hash-${counter}`,
    ip: `198.51.100.${counter % 250}`,
    createdAt: T0,
    expiresAt: T0 + DAY,
    ...fields,
  };
}

function mail(payload = "sealed-mail", createdAt = T0): NewOutboxItem {
  return { kind: "mail", payload, createdAt };
}

function event(payload = "sealed-event", createdAt = T0): NewOutboxItem {
  return { kind: "event", payload, createdAt };
}

function invite(fields: Partial<NewInvite> = {}): NewInvite {
  counter += 1;
  return {
    handle: `handle-${counter}`,
    tokenHash: `invite-token-${counter}`,
    issuerKind: "user",
    issuerId: "7",
    issuerName: "alice",
    username: null,
    uses: 1,
    createdAt: T0,
    expiresAt: T0 + 7 * DAY,
    ...fields,
  };
}

async function insertOk(store: Store, p: NewPending, outbox: NewOutboxItem[] = []): Promise<number> {
  const result = await store.insertPending(p, outbox);
  if (!result.ok) assert.fail(`insertPending of ${p.username} was refused: ${result.conflict}`);
  return result.id;
}

/** Registers and verifies, so the name and mail hash belong to an account. */
async function createAccount(store: Store, fields: Partial<NewPending> = {}, at = T0): Promise<AccountSummary> {
  const p = pending({ createdAt: at, expiresAt: at + DAY, ...fields });
  await insertOk(store, p);
  const result = await store.activatePending(p.tokenHash, at, () => []);
  if (result?.outcome !== "created") assert.fail(`activation of ${p.username} did not create an account`);
  return result.account;
}

/** Everything due at `now`, leased for a minute. */
async function claimAll(store: Store, now = T0): Promise<OutboxItem[]> {
  return store.claimOutbox(now, now + MINUTE, 1000);
}

function contract(name: string, makeStore: MakeStore): void {
  describe(`${name} store contract`, () => {
    /** A test body run against a store on an empty database of its own. */
    function it(title: string, body: (store: Store, fixture: StoreFixture) => Promise<void>): void {
      test(title, async () => {
        const fixture = await makeStore();
        try {
          await body(fixture.store, fixture);
        } finally {
          await fixture.dispose();
        }
      });
    }

    describe("schema and service secret", () => {
      test("migrating a second time changes nothing and keeps the rows", async () => {
        const fixture = await makeStore();
        try {
          const { store } = fixture;
          await createAccount(store, { username: "kept" });
          await store.migrate();
          await store.migrate();
          assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["kept"]);
          assert.equal(await store.findNameHolder("kept", T0), "account");
        } finally {
          await fixture.dispose();
        }
      });

      test("several instances migrating an empty database at once all succeed", async () => {
        const fixture = await makeStore({ migrated: false });
        try {
          const instances = [fixture.store, ...(await Promise.all([1, 2, 3, 4].map(() => fixture.connect())))];
          await Promise.all(instances.map((s) => s.migrate()));
          await createAccount(fixture.store, { username: "after-migrate" });
          assert.equal(await instances[4]!.findNameHolder("after-migrate", T0), "account");
        } finally {
          await fixture.dispose();
        }
      });

      it("loadSecret keeps the first secret it was given", async (store, fixture) => {
        assert.equal(await store.loadSecret("first"), "first");
        assert.equal(await store.loadSecret("second"), "first");
        const other = await fixture.connect();
        assert.equal(await other.loadSecret("third"), "first");
      });

      test("instances loading the secret at once all end up with the same one", async () => {
        const fixture = await makeStore();
        try {
          const instances = [fixture.store, await fixture.connect(), await fixture.connect()];
          const secrets = await Promise.all(instances.flatMap((s, i) => [s.loadSecret(`a${i}`), s.loadSecret(`b${i}`)]));
          assert.equal(new Set(secrets).size, 1);
        } finally {
          await fixture.dispose();
        }
      });

      it("ping answers on an open store", async (store) => {
        await store.ping();
      });
    });

    describe("pending registrations", () => {
      it("a pending registration holds its name and mail hash until it expires", async (store) => {
        const p = pending({ username: "juliet", mailHash: "juliet-mail" });
        const id = await insertOk(store, p);
        assert.ok(Number.isInteger(id) && id > 0, "Number.isInteger(id) && id > 0");
        assert.equal(await store.findNameHolder("juliet", T0), "pending");
        assert.equal(await store.isMailHashHeld("juliet-mail", T0), true);
        assert.equal(await store.findNameHolder("juliet", p.expiresAt - 1), "pending");
        assert.equal(await store.findNameHolder("juliet", p.expiresAt), null);
        assert.equal(await store.isMailHashHeld("juliet-mail", p.expiresAt), false);
        assert.equal(await store.findNameHolder("romeo", T0), null);
        assert.equal(await store.isMailHashHeld("romeo-mail", T0), false);
      });

      it("insertPending queues its outbox items for the new registration", async (store) => {
        const id = await insertOk(store, pending(), [mail("m"), event("e")]);
        assert.equal(await store.outboxDepth(), 2);
        const items = await claimAll(store);
        assert.deepEqual(
          items.map((i) => [i.kind, i.payload, i.userId, i.attempts]),
          [
            ["mail", "m", id, 1],
            ["event", "e", id, 1],
          ],
        );
      });

      it("a second registration of a held name is refused with conflict 'username' and queues nothing", async (store) => {
        await insertOk(store, pending({ username: "juliet" }), [mail()]);
        const result = await store.insertPending(pending({ username: "juliet" }), [mail(), event()]);
        assert.deepEqual(result, { ok: false, conflict: "username" });
        assert.equal(await store.outboxDepth(), 1);
        assert.equal((await store.listPending(T0)).length, 1);
      });

      it("a second registration of a held mail hash is refused with conflict 'mail'", async (store) => {
        await insertOk(store, pending({ mailHash: "shared" }));
        const result = await store.insertPending(pending({ mailHash: "shared" }), [mail()]);
        assert.deepEqual(result, { ok: false, conflict: "mail" });
        assert.equal(await store.outboxDepth(), 0);
      });

      it("an account's name and mail hash refuse new registrations", async (store) => {
        await createAccount(store, { username: "juliet", mailHash: "juliet-mail" });
        assert.deepEqual(await store.insertPending(pending({ username: "juliet" }), []), {
          ok: false,
          conflict: "username",
        });
        assert.deepEqual(await store.insertPending(pending({ mailHash: "juliet-mail" }), []), {
          ok: false,
          conflict: "mail",
        });
        assert.equal(await store.isMailHashHeld("juliet-mail", T0 + 365 * DAY), true);
      });

      it("an expired pending registration is voided by a new one with the same name, with its queued mail", async (store) => {
        const old = pending({ username: "juliet", expiresAt: T0 + MINUTE });
        await insertOk(store, old, [mail("old")]);
        const later = T0 + 2 * MINUTE;
        await insertOk(store, pending({ username: "juliet", createdAt: later, expiresAt: later + DAY }), [mail("new")]);
        assert.equal(await store.findByTokenHash(old.tokenHash, T0), null);
        assert.deepEqual((await claimAll(store, later)).map((i) => i.payload), ["new"]);
      });

      it("an expired pending registration is voided by a new one with the same mail hash", async (store) => {
        const old = pending({ mailHash: "shared", expiresAt: T0 + MINUTE });
        await insertOk(store, old, [mail("old")]);
        const later = T0 + MINUTE;
        const fresh = pending({ mailHash: "shared", createdAt: later, expiresAt: later + DAY });
        await insertOk(store, fresh, [mail("new")]);
        assert.equal(await store.findNameHolder(old.username, T0), null);
        assert.equal(await store.findNameHolder(fresh.username, later), "pending");
        assert.deepEqual((await claimAll(store, later)).map((i) => i.payload), ["new"]);
      });

      it("findByTokenHash tells pending, active, expired and unknown tokens apart", async (store) => {
        const live = pending({ username: "live" });
        const expiring = pending({ username: "expiring", expiresAt: T0 + MINUTE });
        const activated = pending({ username: "activated" });
        await insertOk(store, live);
        await insertOk(store, expiring);
        await insertOk(store, activated);
        await store.activatePending(activated.tokenHash, T0, () => []);
        const later = T0 + MINUTE;
        assert.deepEqual(await store.findByTokenHash(live.tokenHash, later), {
          state: "pending",
          username: "live",
          expiresAt: live.expiresAt,
        });
        assert.deepEqual(await store.findByTokenHash(activated.tokenHash, later), { state: "active", username: "activated" });
        assert.equal(await store.findByTokenHash(expiring.tokenHash, later), null);
        assert.equal(await store.findByTokenHash("no-such-token", later), null);
      });

      it("activatePending creates the account once, then answers already-active", async (store) => {
        const p = pending({ username: "juliet", mailHash: "juliet-mail" });
        await insertOk(store, p, [mail()]);
        const seen: AccountSummary[] = [];
        const verifiedAt = T0 + MINUTE;
        const first = await store.activatePending(p.tokenHash, verifiedAt, (account) => {
          seen.push(account);
          return [event("created", verifiedAt)];
        });
        assert.equal(first?.outcome, "created");
        const account = first.outcome === "created" ? first.account : assert.fail();
        assert.deepEqual(account, { id: account.id, username: "juliet", createdAt: T0, hasMail: true, invitedBy: null });
        assert.deepEqual(seen, [account]);

        const second = await store.activatePending(p.tokenHash, verifiedAt + 1, () => assert.fail("events asked for twice"));
        assert.deepEqual(second, { outcome: "already-active", username: "juliet" });

        assert.equal(await store.findNameHolder("juliet", verifiedAt), "account");
        const login = await store.findLogin("juliet");
        assert.deepEqual(login, { id: account.id, username: "juliet", passwordHash: p.passwordHash });
        const queued = await claimAll(store, verifiedAt);
        assert.deepEqual(
          queued.map((i) => [i.kind, i.payload, i.userId]),
          [
            ["mail", "sealed-mail", account.id],
            ["event", "created", account.id],
          ],
        );
      });

      it("activatePending of an expired or unknown token creates nothing", async (store) => {
        const p = pending({ expiresAt: T0 + MINUTE });
        await insertOk(store, p);
        assert.equal(await store.activatePending(p.tokenHash, T0 + MINUTE, () => assert.fail("no events")), null);
        assert.equal(await store.activatePending("no-such-token", T0, () => assert.fail("no events")), null);
        assert.deepEqual(await store.listAccounts(), []);
        assert.equal(await store.findLogin(p.username), null);
      });

      it("of 20 concurrent registrations of one name exactly one succeeds", async (store) => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.insertPending(pending({ username: "contested" }), [mail()])),
        );
        assert.equal(results.filter((r) => r.ok).length, 1);
        assert.ok(results.every((r) => r.ok || r.conflict === "username"), "results.every((r) => r.ok || r.conflict === \"username\")");
        assert.equal(await store.outboxDepth(), 1);
      });

      it("of 20 concurrent registrations of one mail hash exactly one succeeds", async (store) => {
        const results = await Promise.all(
          Array.from({ length: 20 }, () => store.insertPending(pending({ mailHash: "contested" }), [])),
        );
        assert.equal(results.filter((r) => r.ok).length, 1);
        assert.ok(results.every((r) => r.ok || r.conflict === "mail"), "results.every((r) => r.ok || r.conflict === \"mail\")");
      });

      it("of 20 concurrent activations of one token exactly one creates the account", async (store, fixture) => {
        const p = pending({ username: "juliet" });
        await insertOk(store, p);
        const other = await fixture.connect();
        let asked = 0;
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? other : store).activatePending(p.tokenHash, T0 + 1, () => {
              asked += 1;
              return [event()];
            }),
          ),
        );
        assert.equal(results.filter((r) => r?.outcome === "created").length, 1);
        assert.equal(results.filter((r) => r?.outcome === "already-active").length, 19);
        assert.equal(asked, 1);
        assert.equal(await store.outboxDepth(), 1);
        assert.equal((await store.listAccounts()).length, 1);
      });

      it("listPending shows live registrations in creation order with the state of their latest mail", async (store) => {
        const none = pending({ username: "none", ip: "192.0.2.1", createdAt: T0 });
        const queued = pending({ username: "queued", createdAt: T0 + 1 });
        const sent = pending({ username: "sent", createdAt: T0 + 2 });
        const failed = pending({ username: "failed", createdAt: T0 + 3 });
        const expired = pending({ username: "expired", createdAt: T0, expiresAt: T0 + MINUTE });
        const active = pending({ username: "active", createdAt: T0 });
        const ids = new Map<string, number>();
        for (const p of [none, queued, sent, failed, expired, active]) {
          ids.set(p.username, await insertOk(store, p, p === none ? [event()] : [mail(p.username)]));
        }
        await store.activatePending(active.tokenHash, T0, () => []);
        for (const item of await claimAll(store)) {
          if (item.payload === "sent") await store.markOutboxSent(item.id, T0);
          if (item.payload === "failed") await store.markOutboxFailed(item.id, "550 no such user", T0);
        }
        const list = await store.listPending(T0 + MINUTE);
        assert.deepEqual(
          list.map((p) => [p.username, p.mailStatus]),
          [
            ["none", "none"],
            ["queued", "queued"],
            ["sent", "sent"],
            ["failed", "failed"],
          ],
        );
        assert.deepEqual(list[0], {
          id: ids.get("none"),
          username: "none",
          ip: "192.0.2.1",
          createdAt: T0,
          expiresAt: none.expiresAt,
          mailStatus: "none",
        });
      });

      it("deleteExpiredPending removes only expired pending registrations and their queued mail", async (store) => {
        const expired = pending({ expiresAt: T0 + MINUTE });
        const live = pending();
        await insertOk(store, expired, [mail("expired")]);
        await insertOk(store, live, [mail("live")]);
        await createAccount(store);
        assert.equal(await store.deleteExpiredPending(T0 + MINUTE), 1);
        assert.equal(await store.deleteExpiredPending(T0 + MINUTE), 0);
        assert.deepEqual(await store.findByTokenHash(live.tokenHash, T0), {
          state: "pending",
          username: live.username,
          expiresAt: live.expiresAt,
        });
        assert.equal((await store.listAccounts()).length, 1);
        assert.deepEqual((await claimAll(store, T0 + MINUTE)).map((i) => i.payload), ["live"]);
        // The expired registration's name and mail hash are free again.
        await insertOk(store, pending({ username: expired.username, mailHash: expired.mailHash, createdAt: T0 + MINUTE }));
      });
    });

    describe("accounts", () => {
      it("listAccounts lists accounts by name with who invited them", async (store) => {
        await createAccount(store, { username: "zed" });
        await insertOk(store, pending({ username: "pending-only" }));
        const inv = invite({ issuerName: "alice", uses: 1 });
        await store.insertInvite(inv);
        const accepted = await store.acceptInvite(inv.tokenHash, T0, { username: "bob", passwordHash: "h" }, () => []);
        assert.equal(accepted.ok, true);
        const accounts = await store.listAccounts();
        assert.deepEqual(
          accounts.map((a) => [a.username, a.invitedBy, a.hasMail]),
          [
            ["bob", "alice", false],
            ["zed", null, true],
          ],
        );
        assert.ok(accounts.every((a) => Number.isInteger(a.id) && a.createdAt === T0), "accounts.every((a) => Number.isInteger(a.id) && a.createdAt === T0)");
      });

      it("deleteAccount removes the account and frees its name and mail hash", async (store) => {
        await createAccount(store, { username: "juliet", mailHash: "juliet-mail" });
        await insertOk(store, pending({ username: "pending-only" }));
        assert.equal(await store.deleteAccount("juliet"), true);
        assert.equal(await store.deleteAccount("juliet"), false);
        assert.equal(await store.deleteAccount("pending-only"), false, "a pending registration is not an account");
        assert.equal(await store.findNameHolder("pending-only", T0), "pending");
        assert.equal(await store.isMailHashHeld("juliet-mail", T0), false);
        assert.equal(await store.findLogin("juliet"), null);
        await insertOk(store, pending({ username: "juliet", mailHash: "juliet-mail" }));
      });

      it("an account id is never handed out again after the account is deleted", async (store) => {
        const first = await createAccount(store, { username: "first" });
        const newest = await createAccount(store, { username: "newest" });
        assert.equal(await store.deleteAccount("newest"), true);
        const next = await createAccount(store, { username: "next" });
        assert.ok(next.id > newest.id, `new id ${next.id} after deleted ${newest.id} (first ${first.id})`);
      });

      it("forgetTokensVerifiedBefore forgets only tokens of accounts verified before the cut-off", async (store) => {
        const early = pending();
        const late = pending();
        const waiting = pending();
        await insertOk(store, early);
        await insertOk(store, late);
        await insertOk(store, waiting);
        await store.activatePending(early.tokenHash, T0 + 1, () => []);
        await store.activatePending(late.tokenHash, T0 + 10, () => []);
        assert.equal(await store.forgetTokensVerifiedBefore(T0 + 10), 1);
        assert.equal(await store.forgetTokensVerifiedBefore(T0 + 10), 0);
        assert.equal(await store.findByTokenHash(early.tokenHash, T0 + 20), null);
        assert.deepEqual(await store.findByTokenHash(late.tokenHash, T0 + 20), { state: "active", username: late.username });
        assert.equal((await store.findByTokenHash(waiting.tokenHash, T0 + 20))?.state, "pending");
        assert.equal(await store.findNameHolder(early.username, T0 + 20), "account");
        assert.ok(await store.findLogin(early.username), "await store.findLogin(early.username)");
      });

      it("findLogin finds accounts, not pending registrations", async (store) => {
        await insertOk(store, pending({ username: "waiting" }));
        assert.equal(await store.findLogin("waiting"), null);
        assert.equal(await store.findLogin("nobody"), null);
      });
    });

    describe("api keys", () => {
      it("api keys can be inserted, found, listed in creation order and deleted", async (store) => {
        const b = { id: "kb", name: "second", secretHash: "hash-b", createdAt: T0 + 1 };
        const a = { id: "ka", name: "", secretHash: "hash-a", createdAt: T0 };
        await store.insertApiKey(b);
        await store.insertApiKey(a);
        assert.deepEqual(await store.findApiKey("kb"), b);
        assert.equal(await store.findApiKey("nope"), null);
        assert.deepEqual(await store.listApiKeys(), [a, b]);
        assert.equal(await store.deleteApiKey("ka"), true);
        assert.equal(await store.deleteApiKey("ka"), false);
        assert.deepEqual(await store.listApiKeys(), [b]);
      });

      it("an api key id cannot be inserted twice", async (store) => {
        await store.insertApiKey({ id: "k", name: "", secretHash: "h", createdAt: T0 });
        await assert.rejects(store.insertApiKey({ id: "k", name: "", secretHash: "h2", createdAt: T0 }));
        assert.equal((await store.findApiKey("k"))?.secretHash, "h");
      });
    });

    describe("invites", () => {
      it("an inserted invite is found by its token hash and by its handle", async (store) => {
        const inv = invite({ issuerKind: "key", issuerId: "k1", issuerName: "bot", username: "reserved", uses: 3 });
        const record = await store.insertInvite(inv);
        assert.deepEqual(record, {
          id: record.id,
          handle: inv.handle,
          issuerKind: "key",
          issuerId: "k1",
          issuerName: "bot",
          username: "reserved",
          usesTotal: 3,
          usesLeft: 3,
          createdAt: inv.createdAt,
          expiresAt: inv.expiresAt,
          revokedAt: null,
        });
        assert.ok(Number.isInteger(record.id), "Number.isInteger(record.id)");
        assert.deepEqual(await store.findInviteByTokenHash(inv.tokenHash), record);
        assert.deepEqual(await store.findInviteByHandle(inv.handle), record);
        assert.equal(await store.findInviteByTokenHash("nope"), null);
        assert.equal(await store.findInviteByHandle("nope"), null);
      });

      it("listInvites lists in creation order and revokeInvite revokes once", async (store) => {
        const second = await store.insertInvite(invite({ createdAt: T0 + 1 }));
        const first = await store.insertInvite(invite({ createdAt: T0 }));
        assert.deepEqual((await store.listInvites()).map((i) => i.id), [first.id, second.id]);
        assert.equal(await store.revokeInvite(first.id, T0 + 5), true);
        assert.equal(await store.revokeInvite(first.id, T0 + 6), false);
        assert.equal(await store.revokeInvite(first.id + second.id + 100, T0), false);
        assert.equal((await store.findInviteByHandle(first.handle))?.revokedAt, T0 + 5);
        assert.equal((await store.findInviteByHandle(second.handle))?.revokedAt, null);
      });

      it("accepting an invite creates an account invited by its issuer and uses one use", async (store) => {
        const inv = invite({ issuerName: "alice", uses: 2 });
        await store.insertInvite(inv);
        const seen: AccountSummary[] = [];
        const result = await store.acceptInvite(inv.tokenHash, T0 + 1, { username: "bob", passwordHash: "bob-hash" }, (a) => {
          seen.push(a);
          return [event("joined", T0 + 1)];
        });
        if (!result.ok) assert.fail(`accept refused: ${result.reason}`);
        assert.deepEqual(result.account, {
          id: result.account.id,
          username: "bob",
          createdAt: T0 + 1,
          hasMail: false,
          invitedBy: "alice",
        });
        assert.deepEqual(seen, [result.account]);
        assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 1);
        assert.deepEqual(await store.findLogin("bob"), { id: result.account.id, username: "bob", passwordHash: "bob-hash" });
        assert.deepEqual(
          (await claimAll(store, T0 + 1)).map((i) => [i.kind, i.payload, i.userId]),
          [["event", "joined", result.account.id]],
        );
      });

      it("an invite that is used up, expired or revoked is gone", async (store) => {
        const used = invite({ uses: 1 });
        const expiring = invite({ expiresAt: T0 + MINUTE });
        const revoked = invite();
        await store.insertInvite(used);
        await store.insertInvite(expiring);
        const revokedRecord = await store.insertInvite(revoked);
        await store.revokeInvite(revokedRecord.id, T0);
        const accept = (tokenHash: string, username: string, now = T0) =>
          store.acceptInvite(tokenHash, now, { username, passwordHash: "h" }, () => [event()]);

        assert.equal((await accept(used.tokenHash, "first")).ok, true);
        assert.deepEqual(await accept(used.tokenHash, "second"), { ok: false, reason: "gone" });
        assert.deepEqual(await accept(expiring.tokenHash, "third", T0 + MINUTE), { ok: false, reason: "gone" });
        assert.deepEqual(await accept(revoked.tokenHash, "fourth"), { ok: false, reason: "gone" });
        assert.deepEqual(await accept("no-such-invite", "fifth"), { ok: false, reason: "gone" });
        assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["first"]);
        assert.equal(await store.outboxDepth(), 1);
        assert.equal((await store.findInviteByTokenHash(expiring.tokenHash))?.usesLeft, 1);
        assert.equal((await store.findInviteByTokenHash(revoked.tokenHash))?.usesLeft, 1);
      });

      it("a taken name leaves the invite's uses unchanged", async (store) => {
        await createAccount(store, { username: "account" });
        await insertOk(store, pending({ username: "waiting" }));
        const inv = invite({ uses: 1 });
        await store.insertInvite(inv);
        for (const username of ["account", "waiting"]) {
          const result = await store.acceptInvite(inv.tokenHash, T0, { username, passwordHash: "h" }, () => [event()]);
          assert.deepEqual(result, { ok: false, reason: "username-taken" });
        }
        assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 1);
        assert.equal(await store.outboxDepth(), 0);
        assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["account"]);
      });

      it("an expired pending registration does not keep its name from an invited account", async (store) => {
        const old = pending({ username: "juliet", expiresAt: T0 + MINUTE });
        await insertOk(store, old);
        const inv = invite();
        await store.insertInvite(inv);
        const result = await store.acceptInvite(inv.tokenHash, T0 + MINUTE, { username: "juliet", passwordHash: "h" }, () => []);
        assert.equal(result.ok, true);
        assert.equal(await store.findByTokenHash(old.tokenHash, T0), null);
      });

      it("of 20 concurrent accepts of a one-use invite exactly one wins", async (store, fixture) => {
        const inv = invite({ uses: 1 });
        await store.insertInvite(inv);
        const other = await fixture.connect();
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? other : store).acceptInvite(inv.tokenHash, T0, { username: `guest${i}`, passwordHash: "h" }, () => [
              event(),
            ]),
          ),
        );
        assert.equal(results.filter((r) => r.ok).length, 1);
        assert.equal(results.filter((r) => !r.ok && r.reason === "gone").length, 19);
        assert.equal((await store.findInviteByTokenHash(inv.tokenHash))?.usesLeft, 0);
        assert.equal((await store.listAccounts()).length, 1);
        assert.equal(await store.outboxDepth(), 1);
      });
    });

    describe("sessions", () => {
      it("a session is found until it expires, and can be extended and deleted", async (store) => {
        const account = await createAccount(store, { username: "juliet" });
        await store.insertSession("s1", account.id, T0, T0 + MINUTE);
        assert.deepEqual(await store.findSession("s1", T0), { userId: account.id, username: "juliet", expiresAt: T0 + MINUTE });
        assert.equal(await store.findSession("s1", T0 + MINUTE), null);
        await store.extendSession("s1", T0 + 2 * MINUTE);
        assert.deepEqual(await store.findSession("s1", T0 + MINUTE), {
          userId: account.id,
          username: "juliet",
          expiresAt: T0 + 2 * MINUTE,
        });
        await store.deleteSession("s1");
        assert.equal(await store.findSession("s1", T0), null);
        assert.equal(await store.findSession("never", T0), null);
      });

      it("deleteExpiredSessions removes only expired sessions", async (store) => {
        const account = await createAccount(store);
        await store.insertSession("old", account.id, T0, T0 + MINUTE);
        await store.insertSession("new", account.id, T0, T0 + DAY);
        assert.equal(await store.deleteExpiredSessions(T0 + MINUTE), 1);
        assert.equal(await store.deleteExpiredSessions(T0 + MINUTE), 0);
        assert.equal(await store.findSession("old", T0), null);
        assert.ok(await store.findSession("new", T0 + MINUTE), "await store.findSession(\"new\", T0 + MINUTE)");
      });

      it("deleting an account deletes its sessions", async (store) => {
        const gone = await createAccount(store, { username: "gone" });
        const kept = await createAccount(store, { username: "kept" });
        await store.insertSession("gone-session", gone.id, T0, T0 + DAY);
        await store.insertSession("kept-session", kept.id, T0, T0 + DAY);
        await store.deleteAccount("gone");
        assert.equal(await store.findSession("gone-session", T0), null);
        assert.ok(await store.findSession("kept-session", T0), "await store.findSession(\"kept-session\", T0)");
        // Nothing of the deleted account's session is left to expire later.
        assert.equal(await store.deleteExpiredSessions(T0 + 2 * DAY), 1);
      });
    });

    describe("outbox", () => {
      it("claimOutbox leases due items in id order, counting attempts, and not again while leased", async (store) => {
        await insertOk(store, pending(), ["a", "b", "c"].map((p) => mail(p)));
        const first = await store.claimOutbox(T0, T0 + MINUTE, 2);
        assert.deepEqual(first.map((i) => [i.payload, i.attempts]), [["a", 1], ["b", 1]]);
        assert.ok(first[0]!.id < first[1]!.id, "first[0]!.id < first[1]!.id");
        const rest = await store.claimOutbox(T0, T0 + MINUTE, 10);
        assert.deepEqual(rest.map((i) => i.payload), ["c"]);
        assert.deepEqual(await store.claimOutbox(T0 + MINUTE - 1, T0 + 2 * MINUTE, 10), []);
        assert.equal(await store.outboxDepth(), 3, "leased items are still queued");
      });

      it("items not yet due are not claimed", async (store) => {
        await insertOk(store, pending(), [mail("later", T0 + MINUTE)]);
        assert.deepEqual(await store.claimOutbox(T0, T0 + MINUTE, 10), []);
        assert.deepEqual((await store.claimOutbox(T0 + MINUTE, T0 + 2 * MINUTE, 10)).map((i) => i.payload), ["later"]);
      });

      it("an item whose lease ran out is claimed again, as after a crashed sender", async (store, fixture) => {
        await insertOk(store, pending(), [mail("orphaned")]);
        const [claimed] = await store.claimOutbox(T0, T0 + MINUTE, 10);
        assert.ok(claimed, "claimed");
        const other = await fixture.connect();
        const again = await other.claimOutbox(T0 + MINUTE, T0 + 2 * MINUTE, 10);
        assert.deepEqual(again.map((i) => [i.id, i.payload, i.attempts]), [[claimed.id, "orphaned", 2]]);
      });

      it("markOutboxSent takes an item out of the queue", async (store) => {
        await insertOk(store, pending(), [mail("x"), mail("y")]);
        const [x] = await claimAll(store);
        await store.markOutboxSent(x!.id, T0);
        assert.equal(await store.outboxDepth(), 1);
        assert.deepEqual((await claimAll(store, T0 + DAY)).map((i) => i.payload), ["y"]);
      });

      it("markOutboxRetry makes an item due again at its next attempt time", async (store) => {
        await insertOk(store, pending(), [mail("flaky")]);
        const [item] = await claimAll(store);
        await store.markOutboxRetry(item!.id, T0 + 5 * MINUTE, "421 try again later ".repeat(100));
        assert.deepEqual(await claimAll(store, T0 + 5 * MINUTE - 1), []);
        const retried = await claimAll(store, T0 + 5 * MINUTE);
        assert.deepEqual(retried.map((i) => [i.id, i.attempts]), [[item!.id, 2]]);
        assert.equal(await store.outboxDepth(), 1);
      });

      it("markOutboxFailed takes an item out of the queue for good", async (store) => {
        await insertOk(store, pending(), [mail("doomed")]);
        const [item] = await claimAll(store);
        await store.markOutboxFailed(item!.id, "550 no such user", T0);
        assert.equal(await store.outboxDepth(), 0);
        assert.deepEqual(await claimAll(store, T0 + DAY), []);
      });

      it("outboxDepth counts queued items only", async (store) => {
        assert.equal(await store.outboxDepth(), 0);
        await insertOk(store, pending(), [mail("1"), mail("2"), event("3")]);
        assert.equal(await store.outboxDepth(), 3);
        const items = await claimAll(store);
        await store.markOutboxSent(items[0]!.id, T0);
        await store.markOutboxFailed(items[1]!.id, "boom", T0);
        assert.equal(await store.outboxDepth(), 1);
      });

      it("two instances claiming at once never get the same item", async (store, fixture) => {
        const total = 60;
        await insertOk(store, pending(), Array.from({ length: total }, (_, i) => mail(`m${i}`)));
        const instances = [store, await fixture.connect()];
        const drain = async (s: Store): Promise<number[]> => {
          const ids: number[] = [];
          for (;;) {
            const batch = await s.claimOutbox(T0, T0 + MINUTE, 3);
            if (batch.length === 0) return ids;
            ids.push(...batch.map((i) => i.id));
          }
        };
        // Several drainers per instance so claims really overlap on a backend that allows it.
        const claimed = (await Promise.all(instances.flatMap((s) => [drain(s), drain(s), drain(s)]))).flat();
        assert.equal(claimed.length, total);
        assert.equal(new Set(claimed).size, total);
      });

      it("an account's next event is not claimed while its earlier event is still queued", async (store) => {
        const inv = invite({ uses: 1 });
        await store.insertInvite(inv);
        const carol = await store.acceptInvite(inv.tokenHash, T0, { username: "carol", passwordHash: "h" }, () => [
          event("carol-1"),
          event("carol-2"),
          event("carol-3"),
        ]);
        if (!carol.ok) assert.fail(`accept refused: ${carol.reason}`);
        const more = pending({ username: "dave" });
        await insertOk(store, more, [mail("dave-mail")]);
        const dave = await store.activatePending(more.tokenHash, T0, () => [event("dave-1"), event("dave-2")]);
        if (dave?.outcome !== "created") assert.fail("dave was not activated");

        const first = await claimAll(store);
        assert.deepEqual(first.map((i) => i.payload), ["carol-1", "dave-mail", "dave-1"], "one event per account, mail is not held back");

        // A retry scheduled for the first event keeps the second back, also once both are due.
        const carol1 = first.find((i) => i.payload === "carol-1")!;
        await store.markOutboxRetry(carol1.id, T0 + MINUTE, "webhook answered 500");
        for (const item of first.filter((i) => i.payload.startsWith("dave"))) await store.markOutboxSent(item.id, T0);
        const dave2 = await claimAll(store, T0 + 1);
        assert.deepEqual(dave2.map((i) => i.payload), ["dave-2"]);
        await store.markOutboxSent(dave2[0]!.id, T0 + 1);
        assert.deepEqual((await claimAll(store, T0 + 2 * MINUTE)).map((i) => [i.payload, i.attempts]), [["carol-1", 2]]);
        // A leased first event (a sender busy with it) holds the second back too.
        assert.deepEqual(await claimAll(store, T0 + 2 * MINUTE + 1), []);

        await store.markOutboxSent(carol1.id, T0 + 2 * MINUTE);
        const next = await claimAll(store, T0 + 2 * MINUTE);
        assert.deepEqual(next.map((i) => i.payload), ["carol-2"]);
        // One that failed for good no longer holds the rest of the account's events.
        await store.markOutboxFailed(next[0]!.id, "webhook answered 400", T0 + 2 * MINUTE);
        assert.deepEqual((await claimAll(store, T0 + 2 * MINUTE)).map((i) => [i.payload, i.userId]), [["carol-3", carol.account.id]]);
      });

      it("instances claiming at once hand out each account's events one at a time and in order", async (store, fixture) => {
        const accounts: number[] = [];
        for (let a = 0; a < 6; a++) {
          const p = pending();
          await insertOk(store, p);
          const result = await store.activatePending(p.tokenHash, T0, () => [0, 1, 2, 3, 4].map((n) => event(`${a}-${n}`)));
          if (result?.outcome !== "created") assert.fail("activation failed");
          accounts.push(result.account.id);
        }
        const instances = [store, await fixture.connect()];
        const inFlight = new Set<number>();
        const delivered: { userId: number; payload: string }[] = [];
        let overlaps = 0;
        const sender = async (s: Store): Promise<void> => {
          for (let idle = 0; idle < 20; ) {
            const batch = await s.claimOutbox(T0, T0 + MINUTE, 2);
            if (batch.length === 0) {
              idle += 1;
              await new Promise((resolve) => setImmediate(resolve));
              continue;
            }
            idle = 0;
            for (const item of batch) {
              if (inFlight.has(item.userId!)) overlaps += 1;
              inFlight.add(item.userId!);
              delivered.push({ userId: item.userId!, payload: item.payload });
              await new Promise((resolve) => setImmediate(resolve));
              inFlight.delete(item.userId!);
              await s.markOutboxSent(item.id, T0);
            }
          }
        };
        await Promise.all(instances.flatMap((s) => [sender(s), sender(s), sender(s)]));
        assert.equal(overlaps, 0, "no two events of one account were out at the same time");
        assert.equal(delivered.length, 30, "every event was handed out once");
        for (const [a, userId] of accounts.entries()) {
          assert.deepEqual(
            delivered.filter((d) => d.userId === userId).map((d) => d.payload),
            [0, 1, 2, 3, 4].map((n) => `${a}-${n}`),
            `account ${a}'s events in order`,
          );
        }
        assert.equal(await store.outboxDepth(), 0);
      });
    });

    describe("requeuing a verification mail", () => {
      it("a failed mail is queued again, attempts reset and due now", async (store) => {
        await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
        const [item] = await claimAll(store);
        await store.markOutboxFailed(item!.id, "550 mailbox unavailable", T0);
        assert.equal(await store.outboxDepth(), 0);
        assert.equal((await store.listPending(T0))[0]?.mailStatus, "failed");

        assert.deepEqual(await store.requeuePendingMail("juliet", T0 + 5), { ok: true, previous: "failed" });
        assert.equal((await store.listPending(T0 + 5))[0]?.mailStatus, "queued");
        assert.equal(await store.outboxDepth(), 1);
        assert.deepEqual(
          (await claimAll(store, T0 + 5)).map((i) => [i.id, i.payload, i.attempts]),
          [[item!.id, "juliet-mail", 1]],
        );
      });

      it("a queued mail waiting for its retry becomes due now", async (store) => {
        await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
        for (let n = 0; n < 3; n++) {
          const [item] = await claimAll(store, T0 + n * 10 * MINUTE);
          await store.markOutboxRetry(item!.id, T0 + (n + 1) * 10 * MINUTE, "connection refused");
        }
        const now = T0 + 25 * MINUTE;
        assert.deepEqual(await claimAll(store, now), [], "not due before the requeue");
        assert.deepEqual(await store.requeuePendingMail("juliet", now), { ok: true, previous: "queued" });
        assert.deepEqual((await claimAll(store, now)).map((i) => [i.payload, i.attempts]), [["juliet-mail", 1]]);
      });

      it("a mail a sender is holding keeps its lease, so it is not sent twice at once", async (store) => {
        await insertOk(store, pending({ username: "juliet" }), [mail("juliet-mail")]);
        await store.claimOutbox(T0, T0 + MINUTE, 10);
        assert.deepEqual(await store.requeuePendingMail("juliet", T0 + 1), { ok: true, previous: "queued" });
        assert.deepEqual(await claimAll(store, T0 + 1), []);
        assert.deepEqual((await claimAll(store, T0 + MINUTE)).map((i) => [i.payload, i.attempts]), [["juliet-mail", 1]]);
      });

      it("only a live pending registration with a stored, unsent mail can be requeued", async (store) => {
        await insertOk(store, pending({ username: "sent" }), [mail("sent-mail")]);
        await insertOk(store, pending({ username: "nomail" }), []);
        await insertOk(store, pending({ username: "expired", expiresAt: T0 + MINUTE }), [mail("expired-mail")]);
        const done = pending({ username: "active" });
        await insertOk(store, done, [mail("active-mail")]);
        for (const item of await claimAll(store)) {
          if (item.payload === "sent-mail") await store.markOutboxSent(item.id, T0);
          else await store.markOutboxFailed(item.id, "550", T0);
        }
        await store.activatePending(done.tokenHash, T0, () => []);

        assert.deepEqual(await store.requeuePendingMail("sent", T0 + MINUTE), { ok: false, reason: "sent" });
        assert.deepEqual(await store.requeuePendingMail("nomail", T0 + MINUTE), { ok: false, reason: "no-mail" });
        assert.deepEqual(await store.requeuePendingMail("expired", T0 + MINUTE), { ok: false, reason: "no-pending" });
        assert.deepEqual(await store.requeuePendingMail("active", T0 + MINUTE), { ok: false, reason: "no-pending" });
        assert.deepEqual(await store.requeuePendingMail("nobody", T0 + MINUTE), { ok: false, reason: "no-pending" });
        assert.equal(await store.outboxDepth(), 0, "nothing was queued again");
      });
    });
  });
}

// SQLite always: a temporary file per test.
contract("sqlite", async ({ migrated = true } = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-store-"));
  const url = `sqlite:${join(dir, "gatehouse.db")}`;
  const opened: Store[] = [];
  const store = migrated ? await openStore(url) : await connectStore(url);
  opened.push(store);
  return {
    store,
    async connect() {
      const other = await connectStore(url);
      opened.push(other);
      return other;
    },
    async dispose() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// PostgreSQL when a server is named: a fresh schema per test, reached through search_path.
const pgUrl = process.env["GATEHOUSE_TEST_PG"];
if (pgUrl) {
  const admin = new pg.Pool({ connectionString: pgUrl, max: 2 });
  const run = randomBytes(4).toString("hex");
  let schemas = 0;
  after(() => admin.end());

  const withSearchPath = (url: string, schema: string): string =>
    `${url}${url.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;

  contract("postgres", async ({ migrated = true } = {}) => {
    schemas += 1;
    const schema = `gh_test_${run}_${schemas}`;
    await admin.query(`CREATE SCHEMA ${schema}`);
    const url = withSearchPath(pgUrl, schema);
    const opened: Store[] = [];
    try {
      opened.push(migrated ? await openStore(url) : await connectStore(url));
    } catch (err) {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      throw err;
    }
    return {
      store: opened[0]!,
      async connect() {
        const other = await connectStore(url);
        opened.push(other);
        return other;
      },
      async dispose() {
        for (const s of opened) await s.close();
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  });
} else {
  test("postgres store contract", { skip: "GATEHOUSE_TEST_PG not set" }, () => {});
}
