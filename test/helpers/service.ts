import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { startService, type RunningService, type ServeOptions } from "../../src/main.ts";
import { encode, LogCapture, testConfig, withSmtpTransport, type RegistrationFields } from "./harness.ts";
import { Lifetimes } from "./lifetimes.ts";
import { recordIfAsked } from "./openapi.ts";
import { spawnServe, type ServeProcess } from "./process.ts";
import { openSmtpPort, requireSmtp, type SmtpChoice, type SmtpPort } from "./smtp.ts";

export { freePort, waitFor } from "./lifetimes.ts";

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
    onApp: (app, ctx) => recordIfAsked(app, ctx.config),
    ...rest,
  });
  return { service, logs, close: () => service.close() };
}

type TestServiceOptions = Parameters<typeof startTestService>[1];
type ConfigOverrides = NonNullable<Parameters<typeof createConfigDir>[0]>;

/** What withServiceDir hands a test: a config directory, the service on it, its SMTP port and child processes. */
export interface ServiceDir {
  cfg: ConfigDir;
  /** Starts the service in this process on the directory's config; the one running before is closed first. */
  start(options?: TestServiceOptions): Promise<TestService>;
  /** Closes the running service, as a restart or a crash-free stop would. */
  stop(): Promise<void>;
  /** The SMTP port the config sends mail to, when withServiceDir was given `smtp`; throws otherwise. */
  readonly smtp: SmtpPort;
  /** `gatehouse serve ARGS` as a child process (on this config unless ARGS name one), stopped at the end. */
  spawn(args?: string[], options?: Parameters<typeof spawnServe>[1]): Promise<ServeProcess>;
  /** Another config directory (same SMTP port unless the overrides name a transport), removed at the end. */
  configDir(overrides: ConfigOverrides): ConfigDir;
  /** `thing`, closed with `close` at the end (newest first, so before the directory it may use). */
  own<T>(thing: T, close: (thing: T) => unknown): T;
}

export interface ServiceOptions {
  /** A real SMTP sink on loopback that the config's mail goes to, up from the start or "down". */
  smtp?: SmtpChoice;
}

/**
 * Runs `body` on a fresh config directory (createConfigDir's overrides, or a function making them
 * from the SMTP port, for a config that names it its own way). withServiceDir owns every
 * lifetime the test starts — the service, child processes, the SMTP sink, the directories — and
 * however `body` ends, closes them in one place, newest first.
 */
export async function withServiceDir(
  overrides: ConfigOverrides | ((smtp: SmtpPort) => ConfigOverrides),
  body: (dir: ServiceDir) => Promise<void>,
  options: ServiceOptions = {},
): Promise<void> {
  const lifetimes = new Lifetimes();
  let running: TestService | undefined;
  const stop = async () => {
    const svc = running;
    running = undefined;
    await svc?.close();
  };
  try {
    const smtp = options.smtp === undefined ? undefined : await openSmtpPort(lifetimes, options.smtp);
    const smtpOf = () => requireSmtp(smtp, "withServiceDir");
    const configDir = (more: ConfigOverrides) => lifetimes.own(createConfigDir(withSmtpTransport(more, smtp)), (d) => d.remove());
    const cfg = configDir(typeof overrides === "function" ? overrides(smtpOf()) : overrides);
    lifetimes.defer(stop);
    await body({
      cfg,
      async start(serviceOptions) {
        await stop();
        running = await startTestService(cfg.configPath, serviceOptions);
        return running;
      },
      stop,
      get smtp() {
        return smtpOf();
      },
      async spawn(args = ["--config", cfg.configPath], spawnOptions) {
        return lifetimes.own(await spawnServe(args, spawnOptions), (p) => p.stop());
      },
      configDir,
      own: (thing, close) => lifetimes.own(thing, close),
    });
  } finally {
    await lifetimes.closeAll();
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
