import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Client } from "ldapts";
import { LdapTarget } from "../../src/accounts/ldap.ts";
import { hashPassword } from "../../src/domain/passwords.ts";
import { bindsAs, slapdMissing, startSlapd, type SlapdServer } from "../helpers/slapd.ts";

const PASSWORD = `correct horse &<>"' battery`;

describe("OpenLDAP slapd 2.5 (Debian's package) with the argon2 module", { skip: slapdMissing }, () => {
  let server: SlapdServer;
  let target: LdapTarget;

  before(async () => {
    server = await startSlapd();
    console.log(`slapd ready ${server.readyMs} ms after spawning`);
    target = new LdapTarget({
      url: server.url,
      bindDN: server.admin.dn,
      bindPassword: server.admin.password,
      baseDN: server.baseDN,
      includeMail: true,
      timeoutMs: 3000,
    });
  });
  after(async () => {
    await target?.close();
    await server?.close();
  });

  test("an entry made from gatehouse's own Argon2id hash binds with the password, and with no other", async () => {
    const passwordHash = await hashPassword(PASSWORD);
    assert.match(passwordHash, /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
    const outcome = await target.create({ username: "alice", passwordHash, mail: "alice@example.org" });
    assert.deepEqual(outcome, { outcome: "made" });
    assert.equal(bindsAs(server, "alice", PASSWORD), true);
    assert.equal(bindsAs(server, "alice", "correct horse"), false);
  });

  test("the entry carries the template's attributes, the mail when asked, and the hash under {ARGON2}", async () => {
    const passwordHash = await hashPassword(PASSWORD);
    await target.create({ username: "bob", passwordHash, mail: "bob@example.org" });
    const client = new Client({ url: server.url });
    try {
      await client.bind(server.admin.dn, server.admin.password);
      const { searchEntries } = await client.search(`uid=bob,${server.baseDN}`, { scope: "base" });
      const entry = searchEntries[0]!;
      assert.deepEqual([entry["objectClass"]].flat(), ["inetOrgPerson"]);
      assert.equal(entry["cn"], "bob");
      assert.equal(entry["sn"], "bob");
      assert.equal(entry["mail"], "bob@example.org");
      assert.equal(entry["userPassword"], `{ARGON2}${passwordHash}`);
    } finally {
      await client.unbind();
    }
    const withoutMail = new LdapTarget({ url: server.url, bindDN: server.admin.dn, bindPassword: server.admin.password, baseDN: server.baseDN });
    await withoutMail.create({ username: "bob2", passwordHash, mail: "bob2@example.org" });
    const anonymous = new Client({ url: server.url });
    const { searchEntries } = await anonymous.search(`uid=bob2,${server.baseDN}`, { scope: "base" });
    await anonymous.unbind();
    assert.equal(searchEntries[0]?.["mail"], undefined);
  });

  test("the search check says free for a new name and taken for a made one", async () => {
    assert.equal(await target.check("carol"), "free");
    await target.create({ username: "carol", passwordHash: await hashPassword(PASSWORD) });
    assert.equal(await target.check("carol"), "taken");
  });

  test("entryAlreadyExists (68) for someone else's entry is taken, and their password still binds", async () => {
    await target.create({ username: "dave", passwordHash: await hashPassword("dave's own password") });
    const outcome = await target.create({ username: "dave", passwordHash: await hashPassword(PASSWORD) });
    assert.deepEqual(outcome, { outcome: "taken" });
    assert.equal(bindsAs(server, "dave", "dave's own password"), true);
    assert.equal(bindsAs(server, "dave", PASSWORD), false);
  });

  test("a create repeated after the first one made the entry is made, not taken (a lost answer)", async () => {
    const passwordHash = await hashPassword(PASSWORD);
    await target.create({ username: "erin", passwordHash });
    assert.deepEqual(await target.create({ username: "erin", passwordHash }), { outcome: "made" });
  });

  test("remove deletes the entry, so the bind stops working; removing a missing entry is done too", async () => {
    await target.create({ username: "frank", passwordHash: await hashPassword(PASSWORD) });
    assert.equal(bindsAs(server, "frank", PASSWORD), true);
    assert.deepEqual(await target.remove("frank"), { outcome: "made" });
    assert.equal(bindsAs(server, "frank", PASSWORD), false);
    assert.equal(await target.check("frank"), "free");
    assert.deepEqual(await target.remove("frank"), { outcome: "made" });
  });

  test("a wrong bind password is a retry whose reason names neither password nor address", async () => {
    const wrong = new LdapTarget({ url: server.url, bindDN: server.admin.dn, bindPassword: "not the admin password", baseDN: server.baseDN });
    const outcome = await wrong.create({ username: "grace", password: PASSWORD, passwordHash: await hashPassword(PASSWORD), mail: "grace@example.org" });
    assert.equal(outcome.outcome, "retry");
    const reason = outcome.outcome === "retry" ? outcome.reason : "";
    assert.equal(reason, "InvalidCredentialsError (LDAP result 49)");
    assert.doesNotMatch(reason, /not the admin password|correct horse|grace@example\.org/);
    assert.equal(await wrong.check("grace"), "unknown");
  });

  test("with the server stopped every call is a retry within its timeout; started again, it works", async () => {
    await server.stop();
    const started = Date.now();
    const passwordHash = await hashPassword(PASSWORD);
    const outcome = await target.create({ username: "ivan", passwordHash });
    assert.equal(outcome.outcome, "retry");
    assert.match(outcome.outcome === "retry" ? outcome.reason : "", /ECONNREFUSED/);
    assert.equal(await target.check("ivan"), "unknown");
    assert.equal((await target.remove("alice")).outcome, "retry");
    assert.ok(Date.now() - started < 3 * 3000, "each call ends within its timeout");

    await server.start();
    assert.deepEqual(await target.create({ username: "ivan", passwordHash }), { outcome: "made" });
    assert.equal(bindsAs(server, "ivan", PASSWORD), true);
    assert.equal(bindsAs(server, "alice", PASSWORD), true, "entries made before the restart are kept");
  });
});
