/**
 * The floor under the refused target: how close can a Koa app that does only what every refusal
 * needs come to the bare Koa baseline on this machine? Bare Koa is measured in alternating rounds
 * against Koa apps that each add one step, using gatehouse's own code for the step:
 *
 *   bare     answers 401 with the refusal's body, reads nothing (as bench/baseline.ts does)
 *   read     + reads the request body (src/http/body.ts readBody)
 *   decode   + base64, JSON, the five fields, the IP and the address (decodeRegistration)
 *   log      + the one log line per refusal (src/log.ts, as src/app.ts writes it), to a file
 *
 * gatehouse itself does all of this and more (the limiter, the token check, metrics, routing), so
 * the `log` row is an upper bound for its refused rows in `npm run bench`.
 *
 *   npm run bench:floor [-- --rounds 5 --seconds 2]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Koa from "koa";
import pino from "pino";
import { decodeRegistration, readBody } from "../src/http/body.ts";
import { createLogger, requestLogger } from "../src/log.ts";
import { plan, runLoad, type RequestSpec } from "./lib/load.ts";
import { ROOT, spawnListening } from "./lib/processes.ts";
import { encodeRegistration } from "./lib/scenarios.ts";

const STEPS = ["bare", "read", "decode", "log"] as const;
type Step = (typeof STEPS)[number];
const REASON = "auth_token is not valid";

function serve(step: Step, logFile: string): void {
  const rank = STEPS.indexOf(step);
  const log = requestLogger(createLogger("info", pino.destination({ dest: logFile, sync: false })));
  const app = new Koa({ proxy: true });
  app.use(async (ctx) => {
    if (rank >= 1) {
      const body = await readBody(ctx);
      if (rank >= 2) {
        const input = decodeRegistration(body, false);
        if (rank >= 3) {
          log.info(
            { reqId: "-", method: ctx.method, route: "/register_account/", status: 401, code: "AUTH_TOKEN_INVALID", reason: REASON, ip: input.ip, peer: ctx.ip },
            "request refused",
          );
        }
      }
    }
    ctx.status = 401;
    ctx.type = "text/plain; charset=utf-8";
    ctx.body = REASON;
  });
  const server = app.listen(0, "127.0.0.1", () => {
    const address = server.address();
    process.stdout.write(`listening ${typeof address === "object" && address ? address.port : 0}\n`);
  });
  process.once("SIGTERM", () => server.close(() => process.exit(0)));
}

async function drive(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { rounds: { type: "string", default: "5" }, seconds: { type: "string", default: "2" }, connections: { type: "string", default: "10" } },
  });
  const rounds = Math.max(1, Number(values.rounds));
  const seconds = Math.max(1, Math.round(Number(values.seconds)));
  const connections = Math.max(1, Number(values.connections));
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-floor-"));
  // The same request as the bad-auth_token scenario: a well-formed registration with a wrong token.
  const request: RequestSpec = {
    method: "POST",
    path: "/register_account/",
    headers: { "Content-Type": "text/plain" },
    body: encodeRegistration({ username: "floor", password: "bench-password", ip: "203.0.113.20", mail: "floor@example.org", auth_token: "not-the-token" }),
  };
  const fixed = plan({ kind: "fixed", spec: request });
  const apps = await Promise.all(STEPS.map((step) => spawnListening(`the ${step} app`, [join(ROOT, "bench", "floor.ts"), "serve", step, join(dir, `${step}.log`)])));
  try {
    for (const app of apps) await runLoad({ url: app.url, connections, duration: 1, plan: fixed });
    const totals = STEPS.map(() => ({ requests: 0, seconds: 0, other: 0 }));
    for (let round = 0; round < rounds; round++) {
      for (const [i, app] of apps.entries()) {
        const run = await runLoad({ url: app.url, connections, duration: seconds, plan: fixed });
        totals[i]!.requests += run.requests;
        totals[i]!.seconds += run.seconds;
        totals[i]!.other += run.requests - (run.statusCounts["401"] ?? 0);
      }
    }
    const bare = totals[0]!.requests / totals[0]!.seconds;
    const rows = STEPS.map((step, i) => {
      const rate = totals[i]!.requests / totals[i]!.seconds;
      return { step, reqPerSec: Math.round(rate), ratio: Number((rate / bare).toFixed(2)), notAnswered401: totals[i]!.other };
    });
    console.log(`floor: ${rounds} rounds of ${seconds} s per app, alternating, ${connections} connections\n`);
    console.log(`${"step".padEnd(8)}  ${"req/s".padStart(7)}  ratio to bare`);
    for (const row of rows) console.log(`${row.step.padEnd(8)}  ${String(row.reqPerSec).padStart(7)}  ${row.ratio.toFixed(2)}×${row.notAnswered401 ? `  (${row.notAnswered401} answers not 401)` : ""}`);
    mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
    const file = join(ROOT, "bench", "results", `floor-${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}.json`);
    writeFileSync(file, JSON.stringify({ rounds, seconds, connections, rows }, null, 2) + "\n");
    console.log(`\nresults: ${file}`);
    // A step that stopped answering 401 no longer measures a refusal (smoke runs in CI rely on this).
    if (rows.some((row) => row.notAnswered401 > 0)) process.exitCode = 1;
  } finally {
    for (const app of apps) app.child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === "serve") serve(process.argv[3] as Step, process.argv[4]!);
else await drive();
