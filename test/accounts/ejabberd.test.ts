import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EjabberdTarget } from "../../src/accounts/ejabberd.ts";
import { XmppTarget } from "../../src/accounts/xmpp.ts";
import { ejabberdMissing, startEjabberd, type EjabberdServer } from "../helpers/ejabberd.ts";
import { xmppLogsIn } from "../helpers/xmpp-login.ts";

// Spaces and every character XML and JSON escape: it must reach the server unchanged.
const PASSWORD = `correct horse &<>"' battery`;
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"; // ejabberd uses the password, not the hash

describe("ejabberd 23.01 (Debian's package) as a provisioning target", { skip: ejabberdMissing }, () => {
  let server: EjabberdServer;
  let api: EjabberdTarget;
  let adhoc: XmppTarget;

  before(async () => {
    server = await startEjabberd();
    console.log(`ejabberd ready ${server.readyMs} ms after spawning`);
    api = new EjabberdTarget({ url: server.apiUrl, host: server.domain, timeoutMs: 3000 });
    adhoc = new XmppTarget({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      jid: server.admin.jid,
      password: server.admin.password,
      timeoutMs: 3000,
    });
  });
  after(async () => {
    await adhoc?.close();
    await server?.close();
  });

  describe("through the HTTP API (mod_http_api)", () => {
    test("a made account logs in over XMPP with the chosen password, and with no other", async () => {
      assert.deepEqual(await api.create({ username: "alice", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
      assert.equal(await xmppLogsIn(server, "alice", PASSWORD), true);
      assert.equal(await xmppLogsIn(server, "alice", "correct horse"), false);
    });

    test("check_account says free for a new name and taken for a made one", async () => {
      assert.equal(await api.check("bob"), "free");
      await api.create({ username: "bob", password: PASSWORD, passwordHash: HASH });
      assert.equal(await api.check("bob"), "taken");
    });

    test("a name someone else holds is taken, and their password still works", async () => {
      await api.create({ username: "carol", password: "carol's own password", passwordHash: HASH });
      assert.deepEqual(await api.create({ username: "carol", password: PASSWORD, passwordHash: HASH }), { outcome: "taken" });
      assert.equal(await xmppLogsIn(server, "carol", "carol's own password"), true);
      assert.equal(await xmppLogsIn(server, "carol", PASSWORD), false);
    });

    test("a create repeated after the first one made the account is made, not taken (a lost answer)", async () => {
      await api.create({ username: "dave", password: PASSWORD, passwordHash: HASH });
      assert.deepEqual(await api.create({ username: "dave", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
    });

    test("remove ends the login; removing a missing account is done too", async () => {
      await api.create({ username: "erin", password: PASSWORD, passwordHash: HASH });
      assert.deepEqual(await api.remove("erin"), { outcome: "made" });
      assert.equal(await xmppLogsIn(server, "erin", PASSWORD), false);
      assert.equal(await api.check("erin"), "free");
      assert.deepEqual(await api.remove("erin"), { outcome: "made" });
    });

    test("Basic auth of an admin works where no IP rule lets the caller in; a wrong password is a retry that names no secret", async () => {
      const basic = new EjabberdTarget({
        url: server.authApiUrl,
        host: server.domain,
        auth: { type: "basic", user: server.admin.jid, password: server.admin.password },
      });
      assert.deepEqual(await basic.create({ username: "frank", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
      assert.equal(await basic.check("frank"), "taken");
      assert.equal(await xmppLogsIn(server, "frank", PASSWORD), true);

      const anonymous = new EjabberdTarget({ url: server.authApiUrl, host: server.domain });
      const refused = await anonymous.create({ username: "grace", password: PASSWORD, passwordHash: HASH });
      assert.equal(refused.outcome, "retry");
      assert.match(refused.outcome === "retry" ? refused.reason : "", /ejabberd answered 403/);

      const wrong = new EjabberdTarget({
        url: server.authApiUrl,
        host: server.domain,
        auth: { type: "basic", user: server.admin.jid, password: "not the admin password" },
      });
      const outcome = await wrong.create({ username: "grace", password: PASSWORD, passwordHash: HASH });
      assert.equal(outcome.outcome, "retry");
      const reason = outcome.outcome === "retry" ? outcome.reason : "";
      assert.match(reason, /ejabberd answered 401/);
      assert.doesNotMatch(reason, /correct horse|not the admin password|admin@/);
      assert.equal(await wrong.check("frank"), "unknown");
    });
  });

  describe("through XEP-0133 ad-hoc commands (mod_configure)", () => {
    test("add-user makes an account that logs in with the chosen password", async () => {
      assert.deepEqual(await adhoc.create({ username: "heidi", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
      assert.equal(await xmppLogsIn(server, "heidi", PASSWORD), true);
      assert.equal(await api.check("heidi"), "taken");
    });

    test("ejabberd's <conflict/> for a held name is taken, and the holder's password is unchanged", async () => {
      await api.create({ username: "ivan", password: "ivan's own password", passwordHash: HASH });
      assert.deepEqual(await adhoc.create({ username: "ivan", password: PASSWORD, passwordHash: HASH }), { outcome: "taken" });
      assert.equal(await xmppLogsIn(server, "ivan", "ivan's own password"), true);
      assert.deepEqual(await adhoc.create({ username: "ivan", password: "ivan's own password", passwordHash: HASH }), { outcome: "made" });
    });

    test("ejabberd's user-stats cannot tell a free name, so the check says it cannot check", async () => {
      assert.equal(await adhoc.check("judy"), "unchecked");
    });

    test("delete-user ends the login; deleting a missing account is done too", async () => {
      await adhoc.create({ username: "mallory", password: PASSWORD, passwordHash: HASH });
      assert.deepEqual(await adhoc.remove("mallory"), { outcome: "made" });
      assert.equal(await xmppLogsIn(server, "mallory", PASSWORD), false);
      assert.deepEqual(await adhoc.remove("mallory"), { outcome: "made" });
    });
  });

  test("with the server stopped every call is a retry within its timeout; started again, the same targets work", async () => {
    await server.stop();
    const started = Date.now();
    const viaApi = await api.create({ username: "oscar", password: PASSWORD, passwordHash: HASH });
    const viaAdhoc = await adhoc.create({ username: "oscar", password: PASSWORD, passwordHash: HASH });
    assert.equal(viaApi.outcome, "retry");
    assert.equal(viaAdhoc.outcome, "retry");
    assert.match(viaApi.outcome === "retry" ? viaApi.reason : "", /ECONNREFUSED/);
    assert.match(viaAdhoc.outcome === "retry" ? viaAdhoc.reason : "", /ECONNREFUSED/);
    assert.equal(await api.check("oscar"), "unknown");
    assert.equal((await api.remove("oscar")).outcome, "retry");
    assert.ok(Date.now() - started < 4 * 3000, "each call ends within its timeout");

    await server.start();
    console.log(`ejabberd ready again ${server.readyMs} ms after spawning`);
    assert.deepEqual(await adhoc.create({ username: "oscar", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
    assert.equal(await xmppLogsIn(server, "oscar", PASSWORD), true);
    assert.equal(await xmppLogsIn(server, "alice", PASSWORD), true, "accounts made before the restart are kept");
  });
});
