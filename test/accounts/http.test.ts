import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { HttpTarget } from "../../src/accounts/http.ts";
import { verifySignature } from "../helpers/signature.ts";

const SECRET = "account-target-secret-0123456789";
const PASSWORD = `correct horse &<>"' battery`;
const HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

/**
 * An operator's account endpoint: refuses what fails the signature check (401), keeps accounts by
 * name, answers 409 for a taken name, and lets a person "log in" with the password it was given.
 */
class AccountReceiver {
  readonly accounts = new Map<string, { password?: string; mail?: string }>();
  readonly requests: { method: string; path: string; body: string; check: string }[] = [];
  /** When set, every request is answered with this status. */
  failWith: number | undefined;
  #server: Server | undefined;
  url = "";

  async start(port = 0): Promise<void> {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        const check = verifySignature(SECRET, req.headers["x-gatehouse-signature"] as string | undefined, body, Date.now());
        this.requests.push({ method: req.method ?? "", path: req.url ?? "", body, check });
        res.writeHead(this.#answer(req.method ?? "", req.url ?? "", body, check)).end();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(port, "127.0.0.1", () => resolve()));
    this.url = `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  #answer(method: string, path: string, body: string, check: string): number {
    if (check !== "ok") return 401;
    if (this.failWith) return this.failWith;
    const { username, password, mail } = JSON.parse(body) as { username: string; password?: string; mail?: string };
    if (path === "/check") return this.accounts.has(username) ? 409 : 200;
    if (method === "POST") {
      if (this.accounts.has(username)) return 409;
      this.accounts.set(username, { ...(password !== undefined ? { password } : {}), ...(mail !== undefined ? { mail } : {}) });
      return 201;
    }
    if (method === "DELETE") return this.accounts.delete(username) ? 204 : 404;
    return 405;
  }

  logsIn(username: string, password: string): boolean {
    return this.accounts.get(username)?.password === password;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }
}

describe("the http account target against a signed receiver", () => {
  const receiver = new AccountReceiver();
  let target: HttpTarget;

  before(async () => {
    await receiver.start();
    target = new HttpTarget({
      url: `${receiver.url}/accounts`,
      checkUrl: `${receiver.url}/check`,
      secret: SECRET,
      includePassword: true,
      includeMail: true,
      timeoutMs: 2000,
    });
  });
  after(() => receiver.stop());

  test("a made account logs in at the receiver with the chosen password; the request was signed", async () => {
    assert.deepEqual(await target.create({ username: "alice", password: PASSWORD, passwordHash: HASH, mail: "alice@example.org" }), {
      outcome: "made",
    });
    assert.equal(receiver.logsIn("alice", PASSWORD), true);
    assert.equal(receiver.accounts.get("alice")?.mail, "alice@example.org");
    const sent = receiver.requests.at(-1)!;
    assert.equal(sent.check, "ok");
    assert.deepEqual(Object.keys(JSON.parse(sent.body) as object), ["username", "mail", "password"]);
  });

  test("without includePassword and includeMail only the name is sent, and no password is needed", async () => {
    const nameOnly = new HttpTarget({ url: `${receiver.url}/accounts`, secret: SECRET });
    assert.equal(nameOnly.needsPassword, false);
    assert.deepEqual(await nameOnly.create({ username: "bob", passwordHash: HASH, mail: "bob@example.org" }), { outcome: "made" });
    assert.deepEqual(JSON.parse(receiver.requests.at(-1)!.body), { username: "bob" });
    assert.equal(await nameOnly.check("bob"), "unchecked", "no checkUrl, no check");
  });

  test("checkUrl says free for a new name and taken for a made one", async () => {
    assert.equal(await target.check("carol"), "free");
    await target.create({ username: "carol", password: PASSWORD, passwordHash: HASH });
    assert.equal(await target.check("carol"), "taken");
  });

  test("409 for a held name is taken, and the holder's password is unchanged", async () => {
    await target.create({ username: "dave", password: "dave's own password", passwordHash: HASH });
    assert.deepEqual(await target.create({ username: "dave", password: PASSWORD, passwordHash: HASH }), { outcome: "taken" });
    assert.equal(receiver.logsIn("dave", "dave's own password"), true);
  });

  test("remove sends a signed DELETE that ends the login; removing a missing account is done too", async () => {
    await target.create({ username: "erin", password: PASSWORD, passwordHash: HASH });
    assert.deepEqual(await target.remove("erin"), { outcome: "made" });
    assert.equal(receiver.requests.at(-1)!.method, "DELETE");
    assert.equal(receiver.requests.at(-1)!.check, "ok");
    assert.equal(receiver.logsIn("erin", PASSWORD), false);
    assert.deepEqual(await target.remove("erin"), { outcome: "made" });
  });

  test("a request signed with another secret is refused, which is a retry", async () => {
    const wrong = new HttpTarget({ url: `${receiver.url}/accounts`, secret: "another secret", includePassword: true });
    assert.deepEqual(await wrong.create({ username: "frank", password: PASSWORD, passwordHash: HASH }), {
      outcome: "retry",
      reason: "create answered 401",
    });
    assert.equal(receiver.accounts.has("frank"), false);
  });

  test("a 5xx is a retry; a receiver that does not answer is a retry within timeoutMs", async () => {
    receiver.failWith = 503;
    assert.deepEqual(await target.create({ username: "grace", password: PASSWORD, passwordHash: HASH }), {
      outcome: "retry",
      reason: "create answered 503",
    });
    assert.equal(await target.check("grace"), "unknown");
    receiver.failWith = undefined;

    const silent = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", () => resolve()));
    const slow = new HttpTarget({
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/accounts`,
      secret: SECRET,
      includePassword: true,
      timeoutMs: 300,
    });
    const started = Date.now();
    const outcome = await slow.create({ username: "grace", password: PASSWORD, passwordHash: HASH, mail: "grace@example.org" });
    silent.closeAllConnections();
    silent.close();
    assert.equal(outcome.outcome, "retry");
    assert.ok(Date.now() - started < 1500, "ends near timeoutMs");
    assert.doesNotMatch(outcome.outcome === "retry" ? outcome.reason : "", /correct horse|grace@/);
  });

  test("with the receiver stopped it is a retry; started again on its port, the account is made", async () => {
    const port = Number(new URL(receiver.url).port);
    await receiver.stop();
    const outcome = await target.create({ username: "ivan", password: PASSWORD, passwordHash: HASH });
    assert.equal(outcome.outcome, "retry");
    // A kept-alive connection the receiver closed, or a refused new one.
    assert.match(outcome.outcome === "retry" ? outcome.reason : "", /ECONNREFUSED|other side closed/);
    assert.equal(await target.check("ivan"), "unknown");
    await receiver.start(port);
    assert.deepEqual(await target.create({ username: "ivan", password: PASSWORD, passwordHash: HASH }), { outcome: "made" });
    assert.equal(receiver.logsIn("ivan", PASSWORD), true);
  });
});
