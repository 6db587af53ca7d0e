import type { Server } from "node:http";
import type Koa from "koa";
import type { Logger } from "pino";
import { createApp } from "./app.ts";
import { loadConfig, type Environment } from "./config.ts";
import { createContext, type AppContext, type Clock } from "./context.ts";
import type { LimiterBacking } from "./domain/limiter.ts";
import { createRedisBacking, type RedisBacking } from "./limiter-backing.ts";
import { OutboxSender } from "./mail/outbox.ts";
import { logConfigWarnings, watchConfig } from "./service/config-watch.ts";
import { addressUrl, closeListeners, createHttpServer, whenListening } from "./service/listeners.ts";
import { startMetricsListener } from "./service/metrics-listener.ts";
import { startSweeper } from "./service/sweeper.ts";
import { warmUp } from "./service/warm-up.ts";
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
  /** Handed the app before it serves: tests record what it answers (GATEHOUSE_OPENAPI_RECORD). */
  onApp?: (app: Koa, ctx: AppContext) => void;
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

/** load config → open store → build context → createApp(ctx).listen, plus the outbox sender, the sweeper and the config watcher. */
export async function startService(options: ServeOptions): Promise<RunningService> {
  const { configPath, log } = options;
  const config = loadConfig(configPath, options.environment);
  log.info({ config: configPath }, `starting on config ${configPath}`);
  logConfigWarnings(log, config, configPath);
  const store = await openStore(config.storage, {
    warn: (message) => log.warn({ reason: message }, "store file permissions tightened"),
    onConnectionLoss: (reason, alsoLost) => log.warn({ reason, alsoLost }, "database connection lost; reconnecting"),
  });
  const redis: RedisBacking | null = config.redis ? await createRedisBacking(config.redis, log) : null;
  let ctx: AppContext;
  try {
    ctx = await createContext(config, store, { log, clock: options.clock, limiterBacking: redis?.backing ?? options.limiterBacking });
  } catch (err) {
    // A refused secret or mail directory must not leave the store and Redis holding the process open.
    await redis?.close();
    await store.close();
    throw err;
  }

  const outbox = new OutboxSender(ctx, options.outboxPollMs);
  const background = options.background !== false;
  if (background) {
    ctx.notifyOutbox = () => outbox.soon();
    outbox.start();
  }
  const sweeper = background ? startSweeper(ctx) : null;
  const configWatch = watchConfig(ctx, { configPath, environment: options.environment, watch: options.watchConfig !== false });
  const stopBackground = async () => {
    configWatch.close();
    sweeper?.stop();
    await outbox.stop();
    ctx.mailer.close();
    await ctx.targets.close();
    await redis?.close();
    await store.close();
  };

  const app = createApp(ctx);
  options.onApp?.(app, ctx);
  await warmUp(ctx);
  const server = createHttpServer(app.callback(), options.requestTimeoutMs);
  server.listen(options.listen?.port ?? config.listen.port, options.listen?.host ?? config.listen.host);
  const metricsServer = startMetricsListener(config, ctx.metrics, options.clusterWorker === true);
  try {
    await whenListening([server, metricsServer]);
  } catch (err) {
    // A port in use must not leave the config watcher and the store holding the process open.
    await closeListeners(server, metricsServer);
    await stopBackground();
    throw err;
  }
  const url = addressUrl(server);
  log.info({ url, config: configPath, storage: store.kind, transport: ctx.mailer.description }, "gatehouse listening");

  let closed = false;
  return {
    url,
    metricsUrl: metricsServer ? addressUrl(metricsServer) : null,
    ctx,
    server,
    outbox,
    reload: configWatch.reload,
    async close() {
      if (closed) return;
      closed = true;
      await closeListeners(server, metricsServer);
      await stopBackground();
    },
  };
}
