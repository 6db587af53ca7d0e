import { createHash } from "node:crypto";
import { watch, watchFile, unwatchFile, readFileSync, type FSWatcher } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { createApp } from "./app.ts";
import { configForReload, configWarnings, loadConfig, type Config, type Environment } from "./config.ts";
import { isStoreUnavailable } from "./errors.ts";
import { applyConfig, createContext, type AppContext, type Clock } from "./context.ts";
import type { LimiterBacking } from "./domain/limiter.ts";
import { createRedisBacking, type RedisBacking } from "./limiter-backing.ts";
import { OutboxSender } from "./mail/outbox.ts";
import { openStore } from "./store/open.ts";

export interface ServeOptions {
  configPath: string;
  log: Logger;
  clock?: Clock;
  /** Overrides config.listen, e.g. port 0 in tests. */
  listen?: { host?: string; port?: number };
  /** Watch the config file for edits (default true). */
  watchConfig?: boolean;
  outboxPollMs?: number;
  /** Run the outbox sender and the sweeper in this process (default true; one worker of a cluster does). */
  background?: boolean;
  /** A worker of `serve --workers N`: its metrics are collected by the primary, which owns `metrics.listen`. */
  clusterWorker?: boolean;
  /** Where rate limits count when no `redis` is configured (default: this process's memory). */
  limiterBacking?: LimiterBacking;
  /** Where GATEHOUSE__… overrides come from (default: the process environment). */
  environment?: Environment;
  /** How long a client may take to send a whole request (default 30 s); tests shorten it. */
  requestTimeoutMs?: number;
}

export interface RunningService {
  url: string;
  /** Where /metrics is served when it has a listener of its own. */
  metricsUrl: string | null;
  ctx: AppContext;
  server: Server;
  outbox: OutboxSender;
  /** Re-reads the config file; false when the new file was refused. */
  reload(): boolean;
  close(): Promise<void>;
}

const SWEEP_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 20_000;

function addressUrl(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** A listener that answers only GET /metrics. */
export function serveMetrics(listen: { host: string; port: number }, render: () => Promise<{ contentType: string; body: string }>): Server {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    render().then(
      ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(body),
      () => res.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable"),
    );
  });
  return server.listen(listen.port, listen.host);
}

function logWarnings(log: Logger, config: Config): void {
  for (const warning of configWarnings(config)) log.warn({ warning }, `config warning: ${warning}`);
}

function fingerprint(file: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return null;
  }
}

/** load config → open store → build context → createApp(ctx).listen, plus the outbox sender and the config watcher. */
export async function startService(options: ServeOptions): Promise<RunningService> {
  const { configPath, log } = options;
  const config = loadConfig(configPath, options.environment);
  logWarnings(log, config);
  const store = await openStore(config.storage, {
    warn: (message) => log.warn({ reason: message }, "store file permissions tightened"),
    onConnectionLoss: (reason, alsoLost) => log.warn({ reason, alsoLost }, "database connection lost; reconnecting"),
  });
  const redis: RedisBacking | null = config.redis ? createRedisBacking(config.redis, log) : null;
  const limiterBacking = redis?.backing ?? options.limiterBacking;
  let ctx: AppContext;
  try {
    ctx = await createContext(config, store, { log, clock: options.clock, limiterBacking });
  } catch (err) {
    // A refused secret or mail directory must not leave the store and Redis holding the process open.
    await redis?.close();
    await store.close();
    throw err;
  }
  const background = options.background !== false;
  const outbox = new OutboxSender(ctx, options.outboxPollMs);
  if (background) {
    ctx.notifyOutbox = () => outbox.soon();
    outbox.start();
  }

  const sweep = async () => {
    const now = ctx.clock.now();
    try {
      const voided = await store.deleteExpiredPending(now);
      await store.forgetTokensVerifiedBefore(now - ctx.config.register.pendingTtlSeconds * 1000);
      await store.deleteExpiredSessions(now);
      await store.purgeErased();
      if (voided > 0) {
        ctx.metrics.expirations.inc(voided);
        log.info({ count: voided }, "expired pending registrations removed");
      }
    } catch (err) {
      // A database outage is retried by the next sweep.
      log[isStoreUnavailable(err) ? "warn" : "error"]({ err: String(err) }, "sweep failed");
    }
  };
  const sweeper = setInterval(() => {
    if (background) void sweep();
  }, SWEEP_MS);
  sweeper.unref();

  let loaded = fingerprint(configPath);
  let loadedConfig = config;
  const reload = (): boolean => {
    const current = fingerprint(configPath);
    let next: Config;
    try {
      next = loadConfig(configPath, options.environment);
    } catch (err) {
      log.error({ file: configPath, reason: (err as Error).message }, "config reload refused; keeping the last good config");
      loaded = current;
      return false;
    }
    const { config: inForce, restart } = configForReload(ctx.config, next, loadedConfig);
    try {
      applyConfig(ctx, inForce);
    } catch (err) {
      log.error({ file: configPath, reason: (err as Error).message }, "config reload refused; keeping the last good config");
      loaded = current;
      return false;
    }
    loaded = current;
    loadedConfig = next;
    if (restart.length > 0) log.warn({ keys: restart }, "config changes that need a restart to take effect");
    log.info({ file: configPath }, "config reloaded");
    logWarnings(log, next);
    return true;
  };

  // Editors save by writing a new file and renaming it over the old one, which ends a watch on
  // the file itself: watch the directory, and poll the path as a net under platforms without events.
  let debounce: NodeJS.Timeout | null = null;
  const onChange = () => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      const current = fingerprint(configPath);
      if (current !== null && current !== loaded) reload();
    }, 150);
  };
  let watcher: FSWatcher | null = null;
  if (options.watchConfig !== false) {
    try {
      watcher = watch(dirname(configPath), (_event, name) => {
        if (name === null || name === basename(configPath)) onChange();
      });
      watcher.on("error", () => {});
    } catch (err) {
      log.warn({ reason: String(err) }, "cannot watch the config directory; polling only");
    }
    watchFile(configPath, { interval: 1000, persistent: false }, onChange);
  }

  const stopBackground = async () => {
    watcher?.close();
    unwatchFile(configPath, onChange);
    if (debounce) clearTimeout(debounce);
    clearInterval(sweeper);
    await outbox.stop();
    ctx.mailer.close();
    await redis?.close();
    await store.close();
  };

  const app = createApp(ctx);
  // Slow clients cannot hold a connection open forever with a trickle of body bytes. Node checks
  // the timeout every connectionsCheckingInterval (30 s by default, which let a 30 s limit run to 60).
  const requestTimeout = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  const server = createServer(
    { requestTimeout, headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout), connectionsCheckingInterval: Math.min(1000, requestTimeout) },
    app.callback(),
  );
  server.listen(options.listen?.port ?? config.listen.port, options.listen?.host ?? config.listen.host);
  // Metrics may get a listener of their own, e.g. on an address only the monitoring network reaches.
  if (options.clusterWorker) {
    // prom-client answers the primary's metrics requests once an AggregatorRegistry exists in the worker.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([ctx.metrics.registry]);
  }
  const metricsServer = config.metrics.enabled && config.metrics.listen && !options.clusterWorker ? serveMetrics(config.metrics.listen, () => ctx.metrics.render()) : null;
  // Both outcomes are awaited from the moment listen() is called, so neither event can be missed.
  const started = [server, metricsServer].map((listener) =>
    listener
      ? new Promise<void>((resolve, reject) => {
          listener.once("listening", resolve);
          listener.once("error", reject);
        })
      : Promise.resolve(),
  );
  try {
    await Promise.all(started);
  } catch (err) {
    server.close();
    metricsServer?.close();
    // A port in use must not leave the config watcher and the store holding the process open.
    await stopBackground();
    throw err;
  }
  const url = addressUrl(server);
  log.info({ url, storage: store.kind, transport: ctx.mailer.description }, "gatehouse listening");

  let closed = false;
  return {
    url,
    metricsUrl: metricsServer ? addressUrl(metricsServer) : null,
    ctx,
    server,
    outbox,
    reload,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      await stopBackground();
    },
  };
}
