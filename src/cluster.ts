import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { RateLimiterClusterMaster } from "rate-limiter-flexible";

type Role = "sender" | "web";

// A worker that dies this soon after it was forked is failing to start, not crashing: don't loop.
const EARLY_EXIT_MS = 5_000;

/**
 * The primary of `serve --workers N`: forks N workers that share one listener, keeps the
 * rate-limit counts for them, restarts a worker that crashes, and on SIGTERM stops them all
 * (each finishes its in-flight requests) before it resolves with the exit code.
 */
export function runPrimary(workers: number, log: Logger): Promise<number> {
  new RateLimiterClusterMaster();
  const roles = new Map<number, { role: Role; started: number }>();
  let stopping = false;
  let exitCode = 0;

  const fork = (role: Role): Worker => {
    const worker = cluster.fork({ GATEHOUSE_WORKER_ROLE: role });
    roles.set(worker.id, { role, started: Date.now() });
    return worker;
  };

  return new Promise<number>((resolve) => {
    const stopAll = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, "stopping workers");
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
      if (Object.keys(cluster.workers ?? {}).length === 0) resolve(exitCode);
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
          resolve(exitCode);
        }
        return;
      }
      const role = info?.role ?? "web";
      if (info && Date.now() - info.started < EARLY_EXIT_MS) {
        log.error({ pid: worker.process.pid, code, signal }, "a worker failed to start; stopping");
        exitCode = 1;
        stopAll("worker-failed");
        return;
      }
      log.warn({ pid: worker.process.pid, code, signal, role }, "worker died; starting another");
      fork(role);
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
