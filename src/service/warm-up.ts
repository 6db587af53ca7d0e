import { mkdtempSync, rmSync } from "node:fs";
import { createServer, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../app.ts";
import type { Config } from "../config.ts";
import type { AppContext } from "../context.ts";
import { compileRules } from "../domain/filters.ts";
import { createFormLimiters, createLimiters } from "../domain/limiter.ts";
import { WriteHealth } from "../domain/write-health.ts";
import { createLogger } from "../log.ts";
import { Metrics } from "../metrics.ts";
import type { Store } from "../store/store.ts";

const WARM_TOKEN = "warm-up-token";
const WARM_BLACKLIST = "192.0.2.0/24"; // TEST-NET-1
const WARM_FILTER = "@warm-up\\.invalid$";

function registration(fields: { ip: string; mail: string; auth_token: string }): string {
  return Buffer.from(JSON.stringify({ username: "warmup", password: "warm-up-password", ...fields })).toString("base64");
}

/** Every refusal that comes before the password hash and depends on nothing stored, as a client sends it. */
const REFUSALS: { status: number; body: string }[] = [
  { status: 401, body: registration({ ip: "203.0.113.1", mail: "warmup@example.org", auth_token: "not-the-token" }) },
  { status: 403, body: registration({ ip: "192.0.2.1", mail: "warmup@example.org", auth_token: WARM_TOKEN }) },
  { status: 403, body: registration({ ip: "203.0.113.1", mail: "someone@warm-up.invalid", auth_token: WARM_TOKEN }) },
  { status: 400, body: `${registration({ ip: "203.0.113.1", mail: "warmup@example.org", auth_token: WARM_TOKEN }).slice(0, 40)}!*AAAA` },
];

/** A store that refuses every call: a warm-up request that got as far as the store must not change it. */
const noStore = new Proxy({} as Store, {
  get: () => () => Promise.reject(new Error("the start-up warm-up has no store")),
});

/**
 * Sends each cheap refusal once through a throwaway app before the service listens, so the first
 * requests after a start (a restart in a flood, a deploy) do not also wait for the lazy
 * compilation of every function on those paths: the registration's front door, the decoder, the
 * checks, the log line, the answer. Throwaway means nothing of the service is touched: the rules that refuse come from a
 * config of its own, the limiters, metrics and write health are its own, its logger writes
 * nowhere, its store refuses every call, and it listens on a Unix socket in a directory only this
 * user can open, for as long as the requests take. Resolves with the statuses answered.
 */
export async function warmRefusals(ctx: AppContext): Promise<number[]> {
  const register = { ...ctx.config.register, secure: false, authTokens: [WARM_TOKEN], blacklist: [WARM_BLACKLIST], whitelist: [], filteredMails: [WARM_FILTER] };
  const config: Config = { ...ctx.config, trustProxy: false, register };
  const warm: AppContext = {
    ...ctx,
    config,
    rules: compileRules(config),
    store: noStore,
    limiters: createLimiters(0),
    formLimiters: createFormLimiters(config.antibot.auto),
    log: createLogger("info", { write: () => {} }),
    metrics: new Metrics(noStore, () => ctx.clock.now(), { processMetrics: false }),
    notifyOutbox: () => {},
    writeHealth: new WriteHealth(),
  };
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-warm-"));
  const socketPath = join(dir, "http.sock");
  const server = createServer(createApp(warm).callback());
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, resolve);
    });
    const statuses: number[] = [];
    for (const refusal of REFUSALS) {
      statuses.push(
        await new Promise<number>((resolve, reject) => {
          const req = request({ socketPath, method: "POST", path: config.register.basePath, headers: { host: "localhost" }, timeout: 2000 }, (res) => {
            res.resume();
            res.once("end", () => resolve(res.statusCode ?? 0));
          });
          req.once("timeout", () => req.destroy(new Error("the start-up warm-up got no answer")));
          req.once("error", reject);
          req.end(refusal.body);
        }),
      );
    }
    return statuses;
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** At start: a warm-up that fails costs only what it is for, never the start. */
export async function warmUp(ctx: AppContext): Promise<void> {
  try {
    await warmRefusals(ctx);
  } catch (err) {
    ctx.log.debug({ reason: String(err) }, "start-up warm-up failed");
  }
}
