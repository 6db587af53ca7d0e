import { spawn } from "node:child_process";
import { runCli } from "../../src/cli/index.ts";
import { createHarness, type Harness } from "./harness.ts";
import { gatehouseArgs } from "./process.ts";
import { captureIo } from "./service.ts";

export interface CliResult {
  code: number;
  out: string[];
  err: string[];
}

/** Runs `gatehouse ARGS --config {the harness's config}`, so it opens the same SQLite file. */
export async function cli(h: Pick<Harness, "configPath">, ...args: string[]): Promise<CliResult> {
  const { out, err, io } = captureIo();
  const code = await runCli([...args, "--config", h.configPath], io);
  return { code, out, err };
}

const FILTERS = { register: { blacklist: ["10.0.0.0/8"], filteredMails: ["@bad\\.tld$"] } };

/** The CLI lists pending registrations as of the wall clock, so the harness clock starts there too. */
export async function createCliHarness(): Promise<Harness> {
  const h = await createHarness(FILTERS);
  h.clock.t = Date.now();
  return h;
}

/**
 * Runs `gatehouse ARGS` as its own process, from `cwd`, with `env` added to the environment (where
 * an operator's shell would have it), and collects what it prints.
 */
export function runGatehouse(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  const child = spawn(process.execPath, gatehouseArgs(...args), {
    cwd: options.cwd,
    env: { ...withoutGatehouseVariables(process.env), ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const lines = (text: string) => text.split("\n").filter((line) => line.length > 0);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? -1, out: lines(stdout), err: lines(stderr) }));
  });
}

/** The test runner's own GATEHOUSE_… variables (a config named by GATEHOUSE_CONFIG, overrides) would leak into the command. */
function withoutGatehouseVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("GATEHOUSE_") || name.startsWith("GATEHOUSE_TEST_")));
}
