import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const GATEHOUSE_BIN = join(ROOT, "bin", "gatehouse.js");

// What the refused scenarios send; the config below refuses each of them for its own reason.
export const AUTH_TOKEN = "bench-auth-token-0123456789abcdef";
export const BLACKLISTED_IP = "192.0.2.7"; // TEST-NET-1, blacklisted as a range
export const FILTERED_MAIL = "someone@blocked.example";
export const THROTTLED_IP = "198.51.100.77"; // TEST-NET-2
export const THROTTLE_SECONDS = 3600;

/**
 * The server and the hash-bound child get the same environment (so the same thread pool sizes);
 * the log level is pinned to the default so an operator's debug setting does not skew a run.
 */
export function serverEnv(): NodeJS.ProcessEnv {
  return { ...process.env, GATEHOUSE_LOG_LEVEL: "info" };
}

export function threadPoolSize(): string {
  return process.env["UV_THREADPOOL_SIZE"] ?? "4 (libuv default)";
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * The embedded default (`config.example.json`: SQLite, mail written to a directory) with what the
 * scenarios need: a blacklist, a mail filter, throttling, and the proxy header trusted so the
 * bad-auth_token scenario can come from many peers (one peer is answered 429 after ten).
 */
export function writeBenchConfig(file: string, dataDir: string, port: number): void {
  const config = JSON.parse(readFileSync(join(ROOT, "config.example.json"), "utf8")) as Record<string, unknown> & {
    register: Record<string, unknown>;
    mail: Record<string, unknown>;
  };
  config["listen"] = { host: "127.0.0.1", port };
  config["publicUrl"] = `http://127.0.0.1:${port}`;
  config["trustProxy"] = true;
  config["storage"] = `sqlite:${join(dataDir, "gh.db")}`;
  config.register["secure"] = false;
  config.register["authTokens"] = [AUTH_TOKEN];
  config.register["throttleSeconds"] = THROTTLE_SECONDS;
  config.register["blacklist"] = ["192.0.2.0/24"];
  config.register["filteredMails"] = ["@blocked\\.example$"];
  config.mail["transport"] = `dir:${join(dataDir, "mail")}`;
  writeFileSync(file, JSON.stringify(config, null, 2));
}

const execFileAsync = promisify(execFile);

/** Runs a `gatehouse` command (e.g. `keys create`) and returns what it printed. */
export async function runGatehouseCli(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(process.execPath, [GATEHOUSE_BIN, ...args], { cwd: ROOT, env: serverEnv() });
  return stdout.trim();
}

function waitForExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((done) => child.once("exit", (code) => done(code)));
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  const exited = waitForExit(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** "gatehouse listening" lines written to a log since `from` (a byte offset). */
function listening(file: string, from: number): number {
  try {
    return readFileSync(file).subarray(from).toString("utf8").split('"msg":"gatehouse listening"').length - 1;
  } catch {
    return 0;
  }
}

export interface GatehouseServer {
  pid: number;
  url: string;
  /** performance.now() when the process was spawned, which is about when a profile's clock starts. */
  spawnedAt: number;
  /** SIGTERM, as an operator stops it; a profile is written on this way out. */
  stop(): Promise<void>;
}

export interface StartOptions {
  configFile: string;
  port: number;
  logFile: string;
  /** Run under `node --cpu-prof`, writing DIR/NAME.cpuprofile when the server stops. */
  profile?: { dir: string; name: string };
  /** Another checkout's gatehouse (bench/ab.ts); this one's by default. */
  root?: string;
  /** `serve --workers N`; one process when absent. */
  workers?: number;
}

export async function startGatehouse(options: StartOptions): Promise<GatehouseServer> {
  const log = openSync(options.logFile, "a");
  const nodeFlags = options.profile
    ? ["--cpu-prof", `--cpu-prof-dir=${options.profile.dir}`, `--cpu-prof-name=${options.profile.name}.cpuprofile`]
    : [];
  const spawnedAt = performance.now();
  const root = options.root ?? ROOT;
  const workers = options.workers && options.workers > 1 ? ["--workers", String(options.workers)] : [];
  const logStart = existsSync(options.logFile) ? statSync(options.logFile).size : 0;
  const child = spawn(process.execPath, [...nodeFlags, join(root, "bin", "gatehouse.js"), "serve", ...workers, "--config", options.configFile], {
    cwd: root,
    env: serverEnv(),
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  const url = `http://127.0.0.1:${options.port}`;
  const exited = waitForExit(child);
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (gone) throw new Error(`gatehouse exited during start-up (code ${child.exitCode}); its log:\n${tail(options.logFile)}`);
    if (Date.now() > deadline) {
      await stopChild(child, 2_000);
      throw new Error(`gatehouse did not answer /healthz within 60 s; its log:\n${tail(options.logFile)}`);
    }
    try {
      const response = await fetch(`${url}/healthz`);
      await response.arrayBuffer();
      // With workers, every one of them must listen before a measurement, not only the first.
      if (response.status === 200 && listening(options.logFile, logStart) >= (options.workers ?? 1)) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: child.pid!,
    url,
    spawnedAt,
    // A profile is large and written on exit, so it gets longer before SIGKILL.
    stop: () => stopChild(child, options.profile ? 120_000 : 20_000),
  };
}

/** Resident set size of a process in bytes, as the kernel counts it (VmRSS). */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

export interface BaselineServer {
  pid: number;
  url: string;
  /** What every following request is answered with. */
  answerWith(status: number, bytes: number, contentType: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a TypeScript script of the bench that prints `listening PORT` once it serves on
 * 127.0.0.1, and resolves with its URL.
 */
export async function spawnListening(label: string, args: string[]): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    let seen = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      seen += chunk.toString("utf8");
      const match = /listening (\d+)/.exec(seen);
      if (match) resolvePort(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`${label} exited during start-up (code ${code})`)));
  });
  child.stdout!.resume();
  return { child, url: `http://127.0.0.1:${port}` };
}

export async function startBaseline(): Promise<BaselineServer> {
  const { child, url } = await spawnListening("the baseline", [join(ROOT, "bench", "baseline.ts"), "0"]);
  return {
    pid: child.pid!,
    url,
    async answerWith(status, bytes, contentType) {
      const query = new URLSearchParams({ status: String(status), size: String(bytes), type: contentType });
      const response = await fetch(`${url}/__bench?${query.toString()}`);
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`the baseline refused its settings: ${response.status}`);
    },
    stop: () => stopChild(child, 5_000),
  };
}

export interface HashBound {
  hashesPerSecond: number;
  hashes: number;
  seconds: number;
  concurrency: number;
  cores: number;
  uvThreadPoolSize: string;
  argon2: Record<string, number>;
}

/** Runs bench/hash-bound.ts in a process of its own, with the server's environment. */
export async function measureHashBound(concurrency: number, duration: number, warmup: number): Promise<HashBound> {
  const { stdout } = await execFileAsync(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "hash-bound.ts"), "--concurrency", String(concurrency), "--duration", String(duration), "--warmup", String(warmup)],
    { cwd: ROOT, env: serverEnv() },
  );
  const line = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(line) as HashBound;
}

/** Kernel ticks per second for /proc times (USER_HZ, 100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

export interface CpuSnapshot {
  at: number;
  /** Ticks every core spent busy, machine-wide. */
  busy: number;
  /** Ticks the hypervisor gave to other guests while this one wanted to run. */
  steal: number;
  /** Ticks per watched process (all its threads). */
  processes: Record<string, number>;
}

export interface CpuShares {
  /** Cores' worth of CPU each watched process used. */
  processes: Record<string, number>;
  /** Cores' worth used by everything else on the machine: other people's tests, say. */
  other: number;
  steal: number;
}

/**
 * A process's CPU ticks. For the bench's own process, its children that have ended are counted
 * too (cutime, cstime): each wrk run is such a child, reaped before a round's last reading, so
 * "client" is the load generator plus the bench that drives it.
 */
function processTicks(pid: number): number {
  try {
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = Number(fields[11]) + Number(fields[12]); // utime, stime
    if (pid === process.pid) return own + Number(fields[13]) + Number(fields[14]);
    // A server's live children are its own work: `serve --workers N`'s workers.
    return own + childrenOf(pid).reduce((sum, child) => sum + processTicks(child), 0);
  } catch {
    return 0;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function snapshotCpu(processes: Record<string, number>): CpuSnapshot {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0]!;
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  const ticks: Record<string, number> = {};
  for (const [name, pid] of Object.entries(processes)) ticks[name] = processTicks(pid);
  return {
    at: performance.now(),
    busy: (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0),
    steal: steal ?? 0,
    processes: ticks,
  };
}

export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuShares {
  const seconds = (after.at - before.at) / 1000;
  const cores = (ticks: number) => (seconds > 0 ? ticks / TICKS_PER_SECOND / seconds : 0);
  const processes: Record<string, number> = {};
  let ours = 0;
  for (const name of Object.keys(after.processes)) {
    const used = after.processes[name]! - (before.processes[name] ?? 0);
    processes[name] = cores(used);
    ours += used;
  }
  return { processes, other: Math.max(0, cores(after.busy - before.busy - ours)), steal: cores(after.steal - before.steal) };
}
