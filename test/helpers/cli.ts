import { runCli } from "../../src/cli/index.ts";
import { createHarness, type Harness } from "./harness.ts";
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
