import { Option, type Command } from "commander";
import { availableParallelism } from "node:os";
import { loadConfig, readEnvironment, resolveConfigPath } from "../config.ts";
import { configOption, positiveInt } from "./common.ts";

function parseWorkers(value: string): number {
  if (value === "auto") return availableParallelism();
  return positiveInt(value);
}

/** `serve` runs until SIGTERM or SIGINT; the exit code it ends with is left in `outcome`. */
export function registerServe(program: Command, outcome: { exitCode: number }): void {
  program
    .command("serve")
    .description("run the service")
    .addOption(new Option("-w, --workers <n>", "processes sharing one listener; 'auto' = one per core").argParser(parseWorkers).default(1))
    .addOption(configOption())
    .action(async (opts: { config?: string; workers: number }) => {
      outcome.exitCode = await serve(opts.config, opts.workers);
    });
}

async function serve(file: string | undefined, workers: number): Promise<number> {
  // The service's modules (Koa, mail, account servers, …) load when it starts, not for every
  // command, and not in the primary of `--workers N`, which only forks and watches the workers.
  const { createLogger } = await import("../log.ts");
  const { logLevel, workerRole } = readEnvironment();
  const log = createLogger(logLevel);
  const configPath = resolveConfigPath(file);
  if (workers > 1 && workerRole === null) {
    const config = loadConfig(configPath); // refuse a bad config here, before any worker starts
    const { runPrimary } = await import("../cluster.ts");
    const exitCode = await runPrimary(workers, log, config.metrics.enabled ? config.metrics.listen : undefined);
    log.flush();
    return exitCode;
  }
  const [{ clusterBacking }, { startService }] = await Promise.all([import("../cluster-limits.ts"), import("../main.ts")]);
  const service = await startService({
    configPath,
    log,
    background: workerRole !== "web",
    limiterBacking: workerRole === null ? undefined : clusterBacking,
    // In a cluster the primary serves the metrics listener, summed over all workers.
    clusterWorker: workerRole !== null,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      process.off("SIGHUP", hup);
      service.close().then(resolve, (err: unknown) => {
        log.error({ err: String(err) }, "shutdown failed");
        resolve();
      });
    };
    const hup = () => service.reload();
    process.on("SIGHUP", hup);
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  log.flush();
  // A worker's IPC channel to the primary would keep it alive after its server has closed.
  if (workerRole !== null) process.disconnect?.();
  return 0;
}
