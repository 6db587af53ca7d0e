import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { XmppTarget } from "../../src/accounts/xmpp.ts";
import { openXmppSession } from "../../src/accounts/xmpp-session.ts";
import { prosodyMissing, startProsody, type ProsodyServer } from "../helpers/prosody.ts";
import { xmppLogsIn } from "../helpers/xmpp-login.ts";

// Spaces and every character XML escapes: the ad-hoc form must carry it unchanged.
const PASSWORD = `correct horse &<>"' battery`;
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"; // Prosody uses the password, not the hash

describe("Prosody 0.12 (Debian's package) through XEP-0133 (mod_admin_adhoc)", { skip: prosodyMissing }, () => {
  let server: ProsodyServer;
  let target: XmppTarget;

  before(async () => {
    server = await startProsody();
    console.log(`prosody ready ${server.readyMs} ms after spawning`);
    target = new XmppTarget({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      jid: server.admin.jid,
      password: server.admin.password,
      tls: { ca: server.tls.ca },
      timeoutMs: 3000,
    });
  });
  after(async () => {
    await target?.close();
    await server?.close();
  });

  test("add-user makes an account that logs in with the chosen password, and with no other", async () => {
    assert.deepEqual(await target.create({ username: "alice", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
    assert.equal(await xmppLogsIn(server, "alice", PASSWORD), true);
    assert.equal(await xmppLogsIn(server, "alice", "correct horse"), false);
  });

  test("the admin stream runs over STARTTLS, verified against the CA it was given", async () => {
    const session = await openXmppSession({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      username: "admin",
      password: server.admin.password,
      tls: { ca: server.tls.ca },
      timeoutMs: 3000,
    });
    assert.equal(session.secure, true);
    await session.stop();

    const untrusting = new XmppTarget({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      jid: server.admin.jid,
      password: server.admin.password,
      timeoutMs: 3000,
    });
    const outcome = await untrusting.create({ username: "bob", password: PASSWORD, passwordHash: HASH });
    await untrusting.close();
    assert.equal(outcome.outcome, "retry");
    assert.match(outcome.outcome === "retry" ? outcome.reason : "", /self-signed certificate/);
    assert.equal(await target.check("bob"), "free", "nothing was made without TLS");
  });

  test("user-stats is the check: free for a new name, taken for a made one", async () => {
    assert.equal(await target.check("carol"), "free");
    await target.create({ username: "carol", password: PASSWORD, passwordHash: HASH });
    assert.equal(await target.check("carol"), "taken");
  });

  test("Prosody's error note in a result means taken, and the holder's password is unchanged", async () => {
    await target.create({ username: "dave", password: "dave's own password", passwordHash: HASH });
    assert.deepEqual(await target.create({ username: "dave", password: PASSWORD, passwordHash: HASH }), { outcome: "taken" });
    assert.equal(await xmppLogsIn(server, "dave", "dave's own password"), true);
    assert.equal(await xmppLogsIn(server, "dave", PASSWORD), false);
  });

  test("a create repeated after the first one made the account is made, not taken (a lost answer)", async () => {
    await target.create({ username: "erin", password: PASSWORD, passwordHash: HASH });
    assert.deepEqual(await target.create({ username: "erin", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
  });

  test("delete-user ends the login, confirmed by user-stats; deleting a missing account is done too", async () => {
    await target.create({ username: "frank", password: PASSWORD, passwordHash: HASH });
    assert.deepEqual(await target.remove("frank"), { outcome: "made" });
    assert.equal(await xmppLogsIn(server, "frank", PASSWORD), false);
    assert.equal(await target.check("frank"), "free");
    assert.deepEqual(await target.remove("frank"), { outcome: "made" });
  });

  test("an admin JID not in `admins` gets a retry naming the refusal, never taken", async () => {
    await target.create({ username: "grace", password: "grace's password", passwordHash: HASH });
    const notAdmin = new XmppTarget({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      jid: `grace@${server.domain}`,
      password: "grace's password",
      tls: { ca: server.tls.ca },
      timeoutMs: 3000,
    });
    const outcome = await notAdmin.create({ username: "heidi", password: PASSWORD, passwordHash: HASH });
    assert.equal(await notAdmin.check("heidi"), "unchecked");
    await notAdmin.close();
    assert.equal(outcome.outcome, "retry");
    assert.equal(outcome.outcome === "retry" ? outcome.reason : "", "add-user refused: forbidden");
    assert.doesNotMatch(outcome.outcome === "retry" ? outcome.reason : "", /correct horse|grace's password/);
  });

  test("with the server stopped every call is a retry within its timeout; started again, the same target reconnects", async () => {
    await server.stop();
    const started = Date.now();
    const outcome = await target.create({ username: "ivan", password: PASSWORD, passwordHash: HASH });
    assert.equal(outcome.outcome, "retry");
    assert.match(outcome.outcome === "retry" ? outcome.reason : "", /ECONNREFUSED/);
    assert.equal(await target.check("ivan"), "unknown");
    assert.equal((await target.remove("alice")).outcome, "retry");
    assert.ok(Date.now() - started < 3 * 3000, "each call ends within its timeout");

    await server.start();
    assert.deepEqual(await target.create({ username: "ivan", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
    assert.equal(await xmppLogsIn(server, "ivan", PASSWORD), true);
    assert.equal(await xmppLogsIn(server, "alice", PASSWORD), true, "accounts made before the restart are kept");
  });
});
