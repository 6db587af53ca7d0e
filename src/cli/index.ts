import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Command, CommanderError } from "commander";
import { PACKAGE_ROOT } from "../config.ts";
import { registerCheckConfig } from "./check-config.ts";
import { defaultIo, type Io } from "./common.ts";
import { registerFilters } from "./filters.ts";
import { registerInvites } from "./invites.ts";
import { registerKeys } from "./keys.ts";
import { registerPending } from "./pending.ts";
import { registerServe } from "./serve.ts";
import { registerUsers } from "./users.ts";

/** The version of the installed package, as `gatehouse --version` prints it. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

function buildProgram(io: Io, outcome: { exitCode: number }): Command {
  const program = new Command("gatehouse")
    .description("a self-hosted signup gate")
    .version(packageVersion(), "-V, --version", "print the version and exit")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();
  registerServe(program, outcome);
  registerCheckConfig(program, io);
  registerUsers(program, io);
  registerPending(program, io);
  registerKeys(program, io);
  registerInvites(program, io);
  registerFilters(program, io);
  return program;
}

/** Runs the `gatehouse` command; resolves to the process exit code. */
export async function runCli(argv: string[], io: Io = defaultIo): Promise<number> {
  const outcome = { exitCode: 0 };
  const program = buildProgram(io, outcome);
  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return outcome.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help that was asked for exits 0; everything else commander refuses is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    // A refused config, a CliError, or whatever else failed: the reason on stderr, exit 1.
    io.err(`gatehouse: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
