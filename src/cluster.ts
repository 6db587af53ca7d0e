import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { serveClusterLimits } from "./cluster-limits.ts";
import { serveMetrics } from "./service/metrics-listener.ts";

type Role = "sender" | "web";


/**
 * The primary of `serve --workers N`: forks N workers that share one listener, keeps the
 * rate-limit counts for them, restarts a worker that crashes, and on SIGTERM stops them all
 * (each finishes its in-flight requests) before it resolves with the exit code.
 */
export function runPrimary(workers: number, log: Logger, metricsListen?: { host: string; port: number }): Promise<number> {
  serveClusterLimits();
  const aggregator = new AggregatorRegistry();
  const metricsServer = metricsListen
    ? serveMetrics(metricsListen, async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() }))
    : null;
  metricsServer?.on("error", (err: Error) => log.error({ reason: err.message }, "cannot serve metrics"));
  const roles = new Map<number, { role: Role; listening: boolean }>();
  let stopping = false;
  let exitCode = 0;

  const fork = (role: Role): Worker => {
    const worker = cluster.fork({ GATEHOUSE_WORKER_ROLE: role });
    roles.set(worker.id, { role, listening: false });
    return worker;
  };

  return new Promise<number>((resolve) => {
    const stopAll = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping workers");
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        metricsServer?.close();
        resolve(exitCode);
      }
    };
    const hup = () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGHUP");
    };

    cluster.on("exit", (worker, code, signal) => {
      const info = roles.get(worker.id);
      roles.delete(worker.id);
      if (stopping) {
        if (Object.keys(cluster.workers ?? {}).length === 0) {
          process.off("SIGHUP", hup);
          metricsServer?.close();
          resolve(exitCode);
        }
        return;
      }
      const role = info?.role ?? "web";
      // A worker that dies before it listens is failing to start, not crashing: don't loop.
      if (info && !info.listening) {
        log.error({ pid: worker.process.pid, code, signal }, "a worker failed to start; stopping");
        exitCode = 1;
        stopAll("worker-failed");
        return;
      }
      log.warn({ pid: worker.process.pid, code, signal, role }, "worker died; starting another");
      fork(role);
    });

    cluster.on("listening", (worker) => {
      const info = roles.get(worker.id);
      if (info) info.listening = true;
    });
    process.on("SIGHUP", hup);
    process.once("SIGTERM", () => stopAll("SIGTERM"));
    process.once("SIGINT", () => stopAll("SIGINT"));

    fork("sender");
    for (let i = 1; i < workers; i++) fork("web");
    log.info({ workers }, "workers started");
  });
}

export function isClusterPrimary(): boolean {
  return cluster.isPrimary;
}
