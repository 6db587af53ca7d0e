import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../../src/config.ts";
import { waitFor } from "./lifetimes.ts";

export interface ServeProcess {
  child: ChildProcess;
  /** Every JSON log line the process printed so far. */
  logs: Record<string, unknown>[];
  stderr: string[];
  /** SIGTERM, then the exit code (null if it had to be killed after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export interface SpawnServeOptions {
  /** How many "gatehouse listening" lines to wait for (one per worker). */
  listening?: number;
  timeoutMs?: number;
  /** The working directory (default: this process's). */
  cwd?: string;
  /** Variables added to this process's environment. */
  env?: Record<string, string>;
  /** The node arguments that run gatehouse: the sources by default, a built bin/gatehouse.js for test/dist.test.ts. */
  entry?: string[];
}

/**
 * `node` arguments that run `gatehouse ARGS` from the sources through tsx, so a test runs the
 * working tree and needs no build; bin/gatehouse.js runs the same entry compiled (test/dist.test.ts).
 * `serve --workers N` forks its workers with these flags too.
 */
const TSX_LOADER = import.meta.resolve("tsx");

export function gatehouseArgs(...args: string[]): string[] {
  // tsx by its full URL: a bare `--import tsx` resolves from the child's working directory.
  return ["--import", TSX_LOADER, join(PACKAGE_ROOT, "src/bin.ts"), ...args];
}

/** Runs `gatehouse serve ARGS` as its own process, as an operator would, and waits until it listens. */
export async function spawnServe(args: string[], { listening = 1, timeoutMs = 20_000, cwd, env, entry = gatehouseArgs() }: SpawnServeOptions = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [...entry, "serve", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    cwd,
    env: env ? { ...process.env, ...env } : undefined,
  });
  const logs: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let buffered = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffered += chunk.toString("utf8");
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        stderr.push(line);
      }
    }
  });
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async (stopTimeoutMs = 15_000): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  try {
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`gatehouse serve exited with ${child.exitCode}: ${stderr.join("")}`);
        return logs.filter((l) => l["msg"] === "gatehouse listening").length >= listening;
      },
      { timeoutMs, what: "gatehouse serve to listen" },
    );
  } catch (err) {
    await stop(2000);
    throw err;
  }
  return { child, logs, stderr, stop };
}
