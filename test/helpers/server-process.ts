import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { waitFor } from "./service.ts";

/**
 * An account server (ejabberd, Prosody, slapd) run by a test: its own process group, so that a
 * launcher script and the server it starts are stopped together, and its output kept for errors.
 */
export class ServerProcess {
  readonly #label: string;
  readonly #command: string;
  readonly #args: string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #logFiles: string[];
  #child: ChildProcess | undefined;
  #output: string[] = [];

  constructor(label: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; logFiles?: string[] } = {}) {
    this.#label = label;
    this.#command = command;
    this.#args = args;
    this.#env = { ...process.env, ...options.env };
    this.#logFiles = options.logFiles ?? [];
  }

  get running(): boolean {
    return this.#child !== undefined && groupAlive(this.#child.pid!);
  }

  /** Starts the server and polls `ready` until it says yes; fails with the server's log after `timeoutMs`. */
  async start(ready: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
    const started = Date.now();
    const child = spawn(this.#command, this.#args, { env: this.#env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    child.stdout!.on("data", (chunk: Buffer) => this.#output.push(chunk.toString("utf8")));
    child.stderr!.on("data", (chunk: Buffer) => this.#output.push(chunk.toString("utf8")));
    child.on("error", (err) => this.#output.push(`spawn failed: ${err.message}\n`));
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
            throw new Error(`${this.#label} exited (${child.exitCode ?? child.signalCode}) before it was ready`);
          }
          return ready();
        },
        { timeoutMs, intervalMs: 50, what: `${this.#label} to be ready` },
      );
    } catch (err) {
      const log = this.log();
      await this.stop();
      throw new Error(`${(err as Error).message}\n--- ${this.#label} log ---\n${log.slice(-4000)}`);
    }
    return Date.now() - started;
  }

  /** SIGTERM to the whole group, SIGKILL after `timeoutMs`; resolves once no process of it is left. */
  async stop(timeoutMs = 10_000): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    this.#child = undefined;
    const group = child.pid;
    signalGroup(group, "SIGTERM");
    try {
      await waitFor(() => !groupAlive(group), { timeoutMs, intervalMs: 50, what: `${this.#label} to stop` });
    } catch {
      signalGroup(group, "SIGKILL");
      await waitFor(() => !groupAlive(group), { timeoutMs: 5000, intervalMs: 50, what: `${this.#label} to die` });
    }
  }

  /** What the process printed and what its log files hold. */
  log(): string {
    const files = this.#logFiles.filter((f) => existsSync(f)).map((f) => `--- ${f}\n${readFileSync(f, "utf8")}`);
    return [this.#output.join(""), ...files].join("\n");
  }
}

function signalGroup(group: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-group, signal);
  } catch {
    // already gone
  }
}

function groupAlive(group: number): boolean {
  try {
    process.kill(-group, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Why a test that needs these files (programs, modules) cannot run here, or undefined when they are all installed. */
export function missingPrograms(programs: string[], packages: string): string | undefined {
  const missing = programs.filter((p) => {
    try {
      accessSync(p, constants.R_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return undefined;
  return `${missing.join(", ")} not installed (apt-get install ${packages}; .ci/run does)`;
}

/** Runs a setup command to completion; throws with its output when it fails. */
export function runChecked(command: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const result = spawnSync(command, args, { env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed (${result.status ?? result.signal}): ${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** What every harness's handle offers, whatever the server. */
export interface AccountServer {
  /** Milliseconds from spawning to ready, for the last start. */
  readyMs: number;
  dir: string;
  log(): string;
  /** Stops the server, keeping its directory, so that start() brings the same accounts back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

/**
 * A handle with `extra` on it, started and then set up by `setup`; if either fails, the server is
 * stopped and its directory removed before the error goes on.
 */
export async function launch<T extends object>(
  server: ServerProcess,
  dir: string,
  ready: () => Promise<boolean>,
  extra: T,
  setup: () => Promise<void> | void = () => {},
): Promise<AccountServer & T> {
  const handle: AccountServer & T = Object.assign(
    {
      readyMs: 0,
      dir,
      log: () => server.log(),
      stop: () => server.stop(),
      async start() {
        handle.readyMs = await server.start(ready, 30_000);
      },
      async close() {
        await server.stop();
        removeDir(dir);
      },
    },
    extra,
  );
  try {
    await handle.start();
  } catch (err) {
    removeDir(dir); // start() stopped the server and put its log in the error
    throw err;
  }
  try {
    await setup();
  } catch (err) {
    const log = server.log();
    await handle.close();
    throw new Error(`${(err as Error).message}\n--- server log ---\n${log.slice(-4000)}`, { cause: err });
  }
  return handle;
}
