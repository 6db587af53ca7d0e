import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import pg from "pg";
import { AppError } from "../../src/errors.ts";
import { postRegistrationJson, registration, verifyToken, withHarness } from "../helpers/harness.ts";
import { openStore } from "../../src/store/open.ts";
import type { NewPending, Store } from "../../src/store/store.ts";

// Issue 10 item 11, at the store: a connection cut at a chosen moment, by a TCP proxy between the
// store and the real PostgreSQL, decides whether a store call runs again, answers as committed, or
// is STORE_UNAVAILABLE.

const PG = process.env["GATEHOUSE_TEST_PG"];

interface Cut {
  /** Cut the connection that sends a message containing this text (the SQL as Kysely writes it: lower-case keywords, quoted names). */
  marker: string;
  /** Let the message through first (and the server act on it), then cut before the answer comes back. */
  deliver: boolean;
}

/** A TCP proxy to PostgreSQL that cuts one connection when asked, or refuses every new one. */
class CuttingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cut: Cut | null = null;
  cuts = 0;
  refusing = false;

  constructor(target: { host: string; port: number }) {
    this.#server = createServer((client) => {
      if (this.refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(target.port, target.host);
      this.#sockets.add(client).add(upstream);
      let cut = false;
      const end = () => {
        cut = true;
        client.destroy();
        upstream.destroy();
      };
      client.on("data", (chunk: Buffer) => {
        if (cut) return;
        const rule = this.#cut;
        if (rule && chunk.includes(rule.marker)) {
          this.#cut = null;
          this.cuts += 1;
          if (!rule.deliver) return end();
          upstream.write(chunk);
          cut = true;
          // Long enough for the server to have acted on it (a COMMIT is a few milliseconds).
          setTimeout(end, 300);
          return;
        }
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => {
        if (!cut) client.write(chunk);
      });
      for (const socket of [client, upstream]) {
        socket.on("error", () => {});
        socket.on("close", () => {
          this.#sockets.delete(socket);
          end();
        });
      }
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.#server.listen(0, "127.0.0.1", () => resolve((this.#server.address() as { port: number }).port)));
  }

  cutNext(rule: Cut): void {
    this.#cut = rule;
  }

  /** Cuts every open connection, as a restart does. */
  cutAll(): void {
    for (const socket of this.#sockets) socket.destroy();
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

let counter = 0;
const T0 = Date.UTC(2026, 0, 1);

function pending(): NewPending {
  counter += 1;
  const tag = randomBytes(4).toString("hex");
  return {
    username: `loss${counter}`,
    skeleton: `loss${counter}`,
    passwordHash: `argon2-hash-${tag}`,
    mailHash: `mail-hash-${tag}`,
    tokenHash: `token-hash-${tag}`,
    ip: "198.51.100.1",
    createdAt: T0,
    expiresAt: T0 + 86_400_000,
  };
}

function isUnavailable(err: unknown): boolean {
  assert.ok(err instanceof AppError, String(err));
  assert.equal(err.code, "STORE_UNAVAILABLE");
  assert.equal(err.status, 503);
  assert.ok((err.options.retryAfter ?? 0) >= 1);
  return true;
}

if (!PG) {
  test("a PostgreSQL connection cut under a store call", { skip: "GATEHOUSE_TEST_PG not set" }, () => {});
} else {
  const schema = `gh_cut_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG });
  const target = new URL(PG);
  const proxy = new CuttingProxy({ host: target.hostname, port: Number(target.port || 5432) });
  const lost: string[] = [];
  let store: Store;
  let viaProxy: string;

  const count = async (sql: string, params: unknown[] = []): Promise<number> =>
    Number((await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.${sql}`, params)).rows[0]!.n);

  before(async () => {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const via = new URL(PG);
    via.hostname = "127.0.0.1";
    via.port = String(await proxy.listen());
    via.searchParams.set("options", `-c search_path=${schema}`);
    viaProxy = via.toString();
    store = await openStore(viaProxy, { onConnectionLoss: (reason) => lost.push(reason) });
  });

  after(async () => {
    await store.close();
    await proxy.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.query(`DROP SCHEMA IF EXISTS ${schema}_http CASCADE`);
    await admin.end();
  });

  test("a COMMIT that went through but whose answer was lost: insertPending answers ok with the stored id, not a conflict", async () => {
    const p = pending();
    proxy.cutNext({ marker: "commit", deliver: true });
    const result = await store.insertPending(p, [{ kind: "mail", payload: "sealed", createdAt: T0 }]);
    assert.equal(proxy.cuts, 1);
    assert.ok(result.ok, JSON.stringify(result));
    const { rows } = await admin.query<{ id: string }>(`SELECT id FROM ${schema}.users WHERE username = $1`, [p.username]);
    assert.equal(rows.length, 1);
    assert.equal(result.id, Number(rows[0]!.id));
    assert.equal(await count("outbox WHERE user_id = $1", [result.id]), 1, "its mail is queued once");
  });

  test("a COMMIT cut before it reached the server: insertPending runs again and stores one registration", async () => {
    const p = pending();
    const cutsBefore = proxy.cuts;
    proxy.cutNext({ marker: "commit", deliver: false });
    const result = await store.insertPending(p, [{ kind: "mail", payload: "sealed", createdAt: T0 }]);
    assert.equal(proxy.cuts, cutsBefore + 1);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(await count("users WHERE username = $1", [p.username]), 1);
    assert.equal(await count("outbox WHERE user_id = $1", [result.id]), 1);
  });

  test("a statement cut inside a transaction: insertPending runs again from BEGIN and stores one registration", async () => {
    const p = pending();
    proxy.cutNext({ marker: 'insert into "users"', deliver: true });
    const result = await store.insertPending(p, []);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(await count("users WHERE username = $1", [p.username]), 1);
  });

  test("a COMMIT whose answer was lost: activatePending answers 'created' with the account, once", async () => {
    const p = pending();
    assert.ok((await store.insertPending(p, [])).ok);
    proxy.cutNext({ marker: "commit", deliver: true });
    let asked = 0;
    const result = await store.activatePending(p.tokenHash, T0 + 1000, () => {
      asked += 1;
      return [{ kind: "event", payload: "sealed", createdAt: T0 + 1000 }];
    });
    assert.equal(result?.outcome, "created", JSON.stringify(result));
    assert.equal(result.outcome === "created" && result.account.username, p.username);
    assert.equal(asked, 1);
    assert.equal(await count("outbox WHERE kind = 'event' AND user_id = $1", [result.account.id]), 1);
  });

  test("a COMMIT whose answer was lost: acceptInvite answers ok with the account; the invite's one use is spent once", async () => {
    const tag = randomBytes(4).toString("hex");
    await store.insertInvite({
      handle: `h-${tag}`, tokenHash: `it-${tag}`, issuerKind: "user", issuerId: "1", issuerName: "alice",
      username: null, uses: 2, createdAt: T0, expiresAt: T0 + 86_400_000,
    });
    proxy.cutNext({ marker: "commit", deliver: true });
    const result = await store.acceptInvite(`it-${tag}`, T0 + 1000, { username: `inv${tag}`, skeleton: `inv${tag}`, passwordHash: `argon2-${tag}` }, () => []);
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(result.account.username, `inv${tag}`);
    const { rows } = await admin.query<{ uses_left: number }>(`SELECT uses_left FROM ${schema}.invites WHERE handle = $1`, [`h-${tag}`]);
    assert.equal(rows[0]!.uses_left, 1);
  });

  test("a COMMIT whose answer was lost: requeuePendingMail, which cannot tell, is STORE_UNAVAILABLE", async () => {
    const p = pending();
    const inserted = await store.insertPending(p, [{ kind: "mail", payload: "sealed", createdAt: T0 }]);
    assert.ok(inserted.ok);
    await admin.query(`UPDATE ${schema}.outbox SET state = 'failed' WHERE user_id = $1`, [inserted.id]);
    proxy.cutNext({ marker: "commit", deliver: true });
    await assert.rejects(store.requeuePendingMail(p.username, T0 + 1000), isUnavailable);
  });

  test("a COMMIT whose answer was lost: removeAccount, which cannot tell, is STORE_UNAVAILABLE; the account went once with one remove job", async () => {
    const p = pending();
    assert.ok((await store.insertPending(p, [])).ok);
    const job = (payload: string) => ({ kind: "provision" as const, target: "xmpp", payload, createdAt: T0 + 1000 });
    await store.activatePending(p.tokenHash, T0 + 1000, () => [job("create")]);
    proxy.cutNext({ marker: "commit", deliver: true });
    await assert.rejects(store.removeAccount(p.username, T0 + 2000, () => [job(`remove-${p.username}`)]), isUnavailable);
    assert.equal(await count("users WHERE username = $1", [p.username]), 0);
    assert.equal(await count("outbox WHERE payload = $1", [`remove-${p.username}`]), 1);
  });

  test("a COMMIT whose answer was lost: retryProvision runs again and answers how many jobs are due", async () => {
    const p = pending();
    assert.ok((await store.insertPending(p, [])).ok);
    const created = await store.activatePending(p.tokenHash, T0 + 1000, () => [
      { kind: "provision", target: "ldap", payload: "create", createdAt: T0 + 1000 },
    ]);
    assert.equal(created?.outcome, "created");
    const userId = created.outcome === "created" ? created.account.id : 0;
    await admin.query(`UPDATE ${schema}.outbox SET state = 'failed', attempts = 5 WHERE user_id = $1`, [userId]);
    proxy.cutNext({ marker: "commit", deliver: true });
    assert.equal(await store.retryProvision(p.username, T0 + 2000), 1);
    assert.equal(await count("outbox WHERE user_id = $1 AND state = 'queued' AND attempts = 0", [userId]), 1);
  });

  test("a single write that cannot be run twice (a new API key) is STORE_UNAVAILABLE when its answer is lost", async () => {
    proxy.cutNext({ marker: 'insert into "api_keys"', deliver: true });
    const id = randomBytes(4).toString("hex");
    await assert.rejects(store.insertApiKey({ id, name: "cut", secretHash: "h", createdAt: T0 }), isUnavailable);
    // It did go in: a second run would have failed on the key instead of telling the truth.
    assert.equal(await count("api_keys WHERE id = $1", [id]), 1);
  });

  test("a read cut in flight runs again and answers", async () => {
    const p = pending();
    assert.ok((await store.insertPending(p, [])).ok);
    proxy.cutNext({ marker: 'select "state" from "users"', deliver: true });
    assert.equal(await store.findNameHolder(p.username, T0), "pending");
  });

  test("every connection cut at once (a restart): the next calls reconnect; nothing is thrown at the process", async () => {
    const p = pending();
    proxy.cutAll();
    assert.ok((await store.insertPending(p, [])).ok);
    await store.ping();
    assert.ok(lost.length > 0, "the loss was reported");
  });

  test("PostgreSQL refusing connections: STORE_UNAVAILABLE with Retry-After, and answers again once it is back", async () => {
    proxy.refusing = true;
    proxy.cutAll();
    await assert.rejects(store.ping(), isUnavailable);
    await assert.rejects(store.insertPending(pending(), []), isUnavailable);
    proxy.refusing = false;
    await store.ping();
    assert.ok((await store.insertPending(pending(), [])).ok);
  });

  test("over HTTP, a database that refuses connections is a 503 with Retry-After logged at warn, and the outbox picks up after", async () => {
    // A schema of its own: the calls above left items in the outbox that no sealer can open.
    await admin.query(`CREATE SCHEMA ${schema}_http`);
    const url = new URL(viaProxy);
    url.searchParams.set("options", `-c search_path=${schema}_http`);
    await withHarness({ storage: url.toString() }, async (h) => {
      const accepted = await postRegistrationJson(h, registration());
      assert.equal(accepted.status, 200, accepted.text);
      proxy.refusing = true;
      proxy.cutAll();
      try {
        const refused = await postRegistrationJson(h, registration());
        assert.equal(refused.status, 503, refused.text);
        assert.equal(refused.headers["retry-after"], "2");
        assert.equal((refused.body as { error: string }).error, "STORE_UNAVAILABLE");
        const verify = await verifyToken(h, accepted.text);
        assert.equal(verify.status, 503);
        assert.ok(verify.headers["retry-after"]);
        const health = await h.http.get("/healthz");
        assert.equal(health.status, 503);
        h.outbox.kick();
        await h.outbox.stop();
      } finally {
        proxy.refusing = false;
      }
      const levels = (msg: string) => h.logs.lines.filter((l) => l["msg"] === msg).map((l) => l["level"]);
      assert.deepEqual(levels("request refused").filter((l) => l !== 30), [40, 40], "the two refusals at warn");
      assert.deepEqual(levels("health check: store unreachable"), [40]);
      assert.deepEqual(levels("outbox pass failed"), [40]);
      assert.deepEqual(h.logs.lines.filter((l) => Number(l["level"]) >= 50), []);

      assert.equal((await h.http.get("/healthz")).status, 200);
      h.outbox.start();
      await h.outbox.drain();
      assert.equal(await h.ctx.store.outboxDepth(), 0, "the queued mail went out once the database was back");
      const done = await verifyToken(h, accepted.text);
      assert.equal(done.status, 200, done.text);
    });
  });
}
