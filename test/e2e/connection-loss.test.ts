import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import pg from "pg";
import { AUTH_TOKEN, registration } from "../helpers/harness.ts";
import { spawnServe, type ServeProcess } from "../helpers/process.ts";
import { createConfigDir, freePort, waitFor } from "../helpers/service.ts";
import { startSmtpSink } from "../helpers/smtp.ts";

// Issue 10 item 11: what a PostgreSQL restart, a failover or an idle-connection reaper does to
// gatehouse's connections, done to the real service while eight clients register and verify.
const PG = process.env["GATEHOUSE_TEST_PG"];
const REDIS = process.env["GATEHOUSE_TEST_REDIS"];

const CLIENTS = 8;
const KILLS = 3;
const KILL_EVERY_MS = 3000;
/** Between one client's requests: a steady stream, not a benchmark. */
const PAUSE_MS = 200;

interface Answer {
  at: number;
  ms: number;
  what: "register" | "verify" | "healthz";
  status: number;
  retryAfter: string | null;
}

interface Registered {
  username: string;
  mail: string;
  token: string;
  verified: boolean;
}

/** A fresh connection per request, so `--workers` hands requests to both workers. */
async function post(url: string, body: string, contentType: string, accept?: string): Promise<{ status: number; text: string; retryAfter: string | null }> {
  const headers: Record<string, string> = { "content-type": contentType, connection: "close" };
  if (accept) headers["accept"] = accept;
  try {
    const res = await fetch(url, { method: "POST", headers, body });
    return { status: res.status, text: await res.text(), retryAfter: res.headers.get("retry-after") };
  } catch (err) {
    // No answer at all (the process or worker died under the request): status 0.
    return { status: 0, text: String(err), retryAfter: null };
  }
}

interface Run {
  answers: Answer[];
  registered: Registered[];
  killedPerRound: number[];
  killedAt: number[];
  /** Per kill: the slowest answer to a request in flight at that moment, in ms. */
  slowestInFlight: number[];
}

/**
 * Eight clients register (and verify what was accepted) in a loop while `kill` is run three times,
 * three seconds apart; returns every answer. Each registration has its own end-user IP in `net`.
 */
async function underKills(url: string, net: string, kill: () => Promise<number>): Promise<Run> {
  const answers: Answer[] = [];
  const registered: Registered[] = [];
  const started: number[] = [];
  let stop = false;
  let n = 0;
  const client = async () => {
    while (!stop) {
      n += 1;
      const fields = registration({ ip: `${net}.${Math.floor(n / 250)}.${n % 250}` });
      const at = Date.now();
      started.push(at);
      const reg = await post(`${url}/register_account/`, Buffer.from(JSON.stringify(fields)).toString("base64"), "application/encoded");
      answers.push({ at, ms: Date.now() - at, what: "register", status: reg.status, retryAfter: reg.retryAfter });
      await new Promise((r) => setTimeout(r, PAUSE_MS));
      if (reg.status !== 200) continue;
      const entry: Registered = { username: fields.username, mail: fields.mail, token: reg.text, verified: false };
      registered.push(entry);
      const vat = Date.now();
      const ver = await post(`${url}/register_account/verify/${entry.token}`, "", "application/x-www-form-urlencoded", "application/json");
      answers.push({ at: vat, ms: Date.now() - vat, what: "verify", status: ver.status, retryAfter: ver.retryAfter });
      entry.verified = ver.status === 200;
    }
  };
  // A load balancer's health check, every 100 ms.
  const health = async () => {
    while (!stop) {
      const at = Date.now();
      const res = await fetch(`${url}/healthz`, { headers: { connection: "close" } }).then((r) => r.status, () => 0);
      answers.push({ at, ms: Date.now() - at, what: "healthz", status: res, retryAfter: null });
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const clients = [...Array.from({ length: CLIENTS }, () => client()), health()];
  const killedPerRound: number[] = [];
  const killedAt: number[] = [];
  for (let round = 0; round < KILLS; round++) {
    await new Promise((r) => setTimeout(r, round === 0 ? 1500 : KILL_EVERY_MS));
    killedAt.push(Date.now());
    killedPerRound.push(await kill());
  }
  await new Promise((r) => setTimeout(r, 2000));
  stop = true;
  await Promise.all(clients);
  const slowestInFlight = killedAt.map((k) => Math.max(0, ...answers.filter((a) => a.at <= k && a.at + a.ms >= k).map((a) => a.ms)));
  return { answers, registered, killedPerRound, killedAt, slowestInFlight };
}

function tally(answers: Answer[]): string {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(`${a.what} ${a.status}`, (counts.get(`${a.what} ${a.status}`) ?? 0) + 1);
  return [...counts.entries()].sort().map(([k, v]) => `${k}: ${v}`).join(", ");
}

interface Scenario {
  name: string;
  workers: number;
  /** Which connections are cut: gatehouse's PostgreSQL backends, or its Redis clients. */
  cut: "postgres" | "redis";
}

const SCENARIOS: Scenario[] = [
  { name: "PostgreSQL's connections are terminated three times in nine seconds", workers: 0, cut: "postgres" },
  { name: "PostgreSQL's connections are terminated three times in nine seconds under serve --workers 2", workers: 2, cut: "postgres" },
  { name: "Redis's client connections are killed three times in nine seconds", workers: 0, cut: "redis" },
];

for (const scenario of SCENARIOS) {
  const title = `${scenario.name}: the service stays up, answers 200 or 503 with Retry-After, loses nothing acknowledged and sends every mail`;
  if (!PG || (scenario.cut === "redis" && !REDIS)) {
    test(title, { skip: "GATEHOUSE_TEST_PG (and GATEHOUSE_TEST_REDIS for the Redis case) must be set" }, () => {});
    continue;
  }
  test(title, async (t) => {
    const tag = randomBytes(4).toString("hex");
    const schema = `gh_loss_${tag}`;
    // Only this instance's connections carry this name: other tests use the same database at once.
    const appName = `gatehouse_loss_${tag}`;
    const admin = new pg.Client({ connectionString: PG });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const storage = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}&application_name=${appName}`;
    const redisAdmin = scenario.cut === "redis" ? new Redis(REDIS!) : null;
    const smtp = await startSmtpSink();
    const port = await freePort();
    const net = `10.${10 + (randomBytes(1)[0]! % 200)}`;
    const dir = createConfigDir({
      listen: { host: "127.0.0.1", port },
      storage,
      ...(scenario.cut === "redis" ? { redis: `${REDIS}${REDIS!.includes("?") ? "&" : "?"}connectionName=${appName}` } : {}),
      register: { secure: false, authTokens: [AUTH_TOKEN], throttleSeconds: scenario.cut === "redis" ? 60 : 0 },
      mail: { from: "gatehouse <noreply@gatehouse.test>", transport: { host: "127.0.0.1", port: smtp.port, secure: false, ignoreTLS: true } },
    });
    const args = scenario.workers > 0 ? ["--workers", String(scenario.workers), "--config", dir.configPath] : ["--config", dir.configPath];
    let serve: ServeProcess | undefined;
    try {
      serve = await spawnServe(args, { listening: Math.max(scenario.workers, 1) });
      const url = `http://127.0.0.1:${port}`;
      const kill = scenario.cut === "postgres"
        ? async () => {
            const { rowCount } = await admin.query(
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND application_name = $1",
              [appName],
            );
            return rowCount ?? 0;
          }
        : async () => {
            const list = String(await redisAdmin!.call("CLIENT", "LIST"));
            const ids = list.split("\n").filter((line) => line.includes(` name=${appName} `)).map((line) => /\bid=(\d+)/.exec(line)![1]!);
            for (const id of ids) await redisAdmin!.call("CLIENT", "KILL", "ID", id);
            return ids.length;
          };

      const run = await underKills(url, net, kill);
      const accepted = run.registered.length;
      t.diagnostic(`connections cut per round: ${run.killedPerRound.join(", ")}`);
      t.diagnostic(`answers: ${tally(run.answers)}`);
      const ms = run.answers.filter((a) => a.what !== "healthz").map((a) => a.ms).sort((a, b) => a - b);
      t.diagnostic(`request ms: median ${ms[Math.floor(ms.length / 2)]}, max ${ms.at(-1)}; slowest in flight at each cut: ${run.slowestInFlight.join(", ")}`);
      t.diagnostic(`warn lines: ${serve.logs.filter((l) => l["level"] === 40).map((l) => l["msg"]).join(" | ")}`);

      await t.test("every round cut some of gatehouse's connections", () => {
        assert.ok(run.killedPerRound.every((k) => k > 0), run.killedPerRound.join(","));
      });

      await t.test("the service stayed up: no process and no worker died", () => {
        assert.equal(serve!.child.exitCode, null, serve!.stderr.join(""));
        assert.equal(serve!.child.signalCode, null);
        const died = serve!.logs.filter((l) => l["msg"] === "worker died; starting another");
        assert.equal(died.length, 0, JSON.stringify(died));
      });

      await t.test("every answer was 200, or 503 with Retry-After; never a 500", () => {
        const bad = run.answers.filter((a) => a.status !== 200 && !(a.status === 503 && a.retryAfter !== null && Number(a.retryAfter) >= 1));
        assert.equal(bad.length, 0, `${tally(run.answers)}; first: ${JSON.stringify(bad.slice(0, 3))}`);
        assert.ok(accepted >= CLIENTS * 3, `only ${accepted} registrations accepted: ${tally(run.answers)}`);
      });

      await t.test("no error-level log line for the cut connections", () => {
        const errors = serve!.logs.filter((l) => Number(l["level"]) >= 50);
        assert.deepEqual(errors, []);
        assert.ok(!serve!.stderr.join("").includes("Error"), serve!.stderr.join(""));
      });

      await t.test("the service answers again: /healthz is 200", async () => {
        await waitFor(async () => (await fetch(`${url}/healthz`)).status === 200, { timeoutMs: 10_000, what: "/healthz 200" });
      });

      await t.test("every accepted registration is stored and verifies; each is an account afterwards", async () => {
        for (const entry of run.registered.filter((r) => !r.verified)) {
          const res = await post(`${url}/register_account/verify/${entry.token}`, "", "application/x-www-form-urlencoded", "application/json");
          assert.equal(res.status, 200, `${entry.username}: ${res.text}`);
          assert.equal((JSON.parse(res.text) as { username: string }).username, entry.username);
        }
        const { rows } = await admin.query<{ username: string }>(`SELECT username FROM ${schema}.users WHERE state = 'active'`);
        const active = new Set(rows.map((r) => r.username));
        const missing = run.registered.filter((r) => !active.has(r.username)).map((r) => r.username);
        assert.deepEqual(missing, []);
      });

      await t.test("the outbox survived: every accepted registration's mail went out", async () => {
        // Mail goes out one SMTP connection at a time: wait while it keeps coming, fail once it stalls.
        const missing = () => {
          const sent = new Set(smtp.received.flatMap((m) => m.to));
          return run.registered.filter((r) => !sent.has(r.mail));
        };
        let left = missing().length;
        let progressAt = Date.now();
        while (left > 0 && Date.now() - progressAt < 15_000) {
          await new Promise((r) => setTimeout(r, 250));
          const now = missing().length;
          if (now < left) progressAt = Date.now();
          left = now;
        }
        if (left > 0) {
          const { rows } = await admin.query(
            `SELECT u.username, o.state, o.attempts, o.lease_until - $1::bigint AS lease_ms_left, o.last_error
             FROM ${schema}.outbox o JOIN ${schema}.users u ON u.id = o.user_id WHERE o.kind = 'mail' AND o.state <> 'sent'`,
            [Date.now()],
          );
          assert.fail(`${left} of ${accepted} mails not sent; unsent outbox rows: ${JSON.stringify(rows)}`);
        }
      });

      await t.test("SIGTERM still stops it cleanly", async () => {
        assert.equal(await serve!.stop(), 0);
      });
    } finally {
      await serve?.stop();
      await smtp.close();
      dir.remove();
      redisAdmin?.disconnect();
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });
}
