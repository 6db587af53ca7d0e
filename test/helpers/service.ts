import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { startService, type RunningService, type ServeOptions } from "../../src/main.ts";
import { encode, LogCapture, testConfig, type RegistrationFields } from "./harness.ts";

/** Polls `check` until it returns something truthy; fails after `timeoutMs` saying what it waited for. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 25, what = "a condition" }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A port that was free a moment ago: listen on 0, note the port, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface ConfigDir {
  dir: string;
  configPath: string;
  /** The raw config as last written. */
  raw: Record<string, unknown>;
  /** Replaces the file the way editors save: write a sibling temp file, rename it over the config. */
  replace(content: Record<string, unknown> | string): void;
  remove(): void;
}

let saves = 0;

/** A temporary directory with a config.json written by testConfig (SQLite file and mail dir inside it). */
export function createConfigDir(overrides: Parameters<typeof testConfig>[1] = {}): ConfigDir {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-svc-"));
  const configPath = join(dir, "config.json");
  const raw = testConfig(dir, overrides);
  writeFileSync(configPath, JSON.stringify(raw, null, 2));
  const handle: ConfigDir = {
    dir,
    configPath,
    raw,
    replace(content) {
      const text = typeof content === "string" ? content : JSON.stringify(content, null, 2);
      if (typeof content !== "string") handle.raw = content;
      saves += 1;
      const temp = join(dir, `.config.json.${process.pid}.${saves}.tmp`);
      writeFileSync(temp, text);
      renameSync(temp, configPath);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** A deep copy of a raw config with `edit` applied, for writing a changed file. */
export function editConfig(raw: Record<string, unknown>, edit: (c: Config) => void): Record<string, unknown> {
  const copy = structuredClone(raw);
  edit(copy as unknown as Config);
  return copy;
}

export interface TestService {
  service: RunningService;
  logs: LogCapture;
  close(): Promise<void>;
}

/** The real service (startService) on port 0 with its logs captured. */
export async function startTestService(
  configPath: string,
  options: Partial<Omit<ServeOptions, "configPath" | "log">> & { logLevel?: string } = {},
): Promise<TestService> {
  const logs = new LogCapture();
  const { logLevel, ...rest } = options;
  const service = await startService({
    configPath,
    log: createLogger(logLevel ?? "info", logs),
    listen: { port: 0 },
    outboxPollMs: 100,
    ...rest,
  });
  return { service, logs, close: () => service.close() };
}

type TestServiceOptions = Parameters<typeof startTestService>[1];

/** A config directory and the service on it, for one test; see withServiceDir. */
export interface ServiceDir {
  cfg: ConfigDir;
  /** Starts the service on the directory's config; the one running before is closed first. */
  start(options?: TestServiceOptions): Promise<TestService>;
  /** Closes the running service, as a restart or a crash-free stop would. */
  stop(): Promise<void>;
}

/**
 * Runs `body` on a fresh config directory (createConfigDir's overrides). However `body` ends, the
 * service it left running is closed, then the directory removed.
 */
export async function withServiceDir(
  overrides: Parameters<typeof createConfigDir>[0],
  body: (dir: ServiceDir) => Promise<void>,
): Promise<void> {
  const cfg = createConfigDir(overrides);
  let running: TestService | undefined;
  const stop = async () => {
    const svc = running;
    running = undefined;
    await svc?.close();
  };
  try {
    await body({
      cfg,
      async start(options) {
        await stop();
        running = await startTestService(cfg.configPath, options);
        return running;
      },
      stop,
    });
  } finally {
    await stop();
    cfg.remove();
  }
}

/** How many log lines carry exactly this message, or start with it. */
export function countLogs(logs: LogCapture, msgStart: string): number {
  return logs.lines.filter((line) => typeof line["msg"] === "string" && (line["msg"] as string).startsWith(msgStart)).length;
}

/** POSTs a registration over real HTTP, base64-encoded as mod_register_json clients send it. */
export async function postRegistrationTo(
  baseUrl: string,
  fields: RegistrationFields | Record<string, unknown>,
  basePath = "/register_account/",
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${baseUrl}${basePath}`, {
    method: "POST",
    headers: { "content-type": "application/encoded" },
    body: encode(fields),
  });
  return { status: res.status, text: await res.text() };
}

/** An io for runCli that keeps what it prints. */
export function captureIo(): { out: string[]; err: string[]; io: { out: (line: string) => void; err: (line: string) => void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (line) => out.push(line), err: (line) => err.push(line) } };
}
