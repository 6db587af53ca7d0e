import { Command, CommanderError, Option } from "commander";
import { ConfigError, loadConfig, readEnvironment, resolveConfigPath, type Config } from "./config.ts";
import { compileRules, explainFilters } from "./domain/filters.ts";
import { prepareUsername } from "./domain/username.ts";
import { createLogger } from "./log.ts";
import { startService } from "./main.ts";
import { openStore } from "./store/open.ts";
import type { Store } from "./store/store.ts";

/** A failure the user caused or must fix: printed to stderr, exit 1. */
class CliError extends Error {}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: Io = {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
};

function configOption(): Option {
  return new Option("-c, --config <file>", "config file (default ./config.json, else config.example.json)");
}

function readConfig(file: string | undefined): { path: string; config: Config } {
  const path = resolveConfigPath(file);
  return { path, config: loadConfig(path) };
}

async function withStore<T>(file: string | undefined, use: (store: Store, config: Config) => Promise<T>): Promise<T> {
  const { config } = readConfig(file);
  const store = await openStore(config.storage);
  try {
    return await use(store, config);
  } finally {
    await store.close();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function buildProgram(io: Io, onServe: (file: string | undefined) => Promise<void>): Command {
  const program = new Command("gatehouse")
    .description("a self-hosted signup gate")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();

  program
    .command("serve")
    .description("run the service")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => onServe(opts.config));

  program
    .command("check-config")
    .description("validate a config file and exit")
    .addOption(configOption())
    .action((opts: { config?: string }) => {
      const { path, config } = readConfig(opts.config);
      compileRules(config);
      io.out(`config ok: ${path}`);
    });

  const users = program.command("users").description("accounts");
  users
    .command("list")
    .description("list accounts: NAME<TAB>CREATED<TAB>MAIL")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        for (const account of await store.listAccounts()) {
          io.out(`${account.username}\t${iso(account.createdAt)}\t${account.hasMail ? "mail" : "no-mail"}`);
        }
      });
    });
  users
    .command("delete")
    .description("delete an account and free its mail address")
    .argument("<name>")
    .addOption(configOption())
    .action(async (name: string, opts: { config?: string }) => {
      const prepared = prepareUsername(name);
      const username = prepared.ok ? prepared.username : name;
      await withStore(opts.config, async (store) => {
        if (!(await store.deleteAccount(username))) throw new CliError(`no account named ${JSON.stringify(name)}`);
        io.out(`deleted ${username}`);
      });
    });

  program
    .command("pending")
    .description("pending registrations")
    .command("list")
    .description("list pending registrations: NAME<TAB>IP<TAB>CREATED<TAB>EXPIRES<TAB>MAIL-STATUS")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        for (const p of await store.listPending(Date.now())) {
          io.out(`${p.username}\t${p.ip}\t${iso(p.createdAt)}\t${iso(p.expiresAt)}\t${p.mailStatus}`);
        }
      });
    });

  program
    .command("filters")
    .description("the IP lists and mail filters")
    .command("test")
    .description("tell which rule, if any, would refuse a registration from IP with ADDRESS")
    .requiredOption("--ip <ip>", "end-user IP address")
    .requiredOption("--mail <address>", "mail address")
    .addOption(configOption())
    .action((opts: { ip: string; mail: string; config?: string }) => {
      const { config } = readConfig(opts.config);
      const verdict = explainFilters(compileRules(config), opts.ip, opts.mail);
      for (const note of verdict.notes) io.out(`note: ${note}`);
      if (verdict.allowed) io.out("allowed: no list or filter refuses this registration");
      else for (const reason of verdict.reasons) io.out(`refused: ${reason}`);
    });

  return program;
}

/** Runs the `gatehouse` command; resolves to the process exit code. */
export async function runCli(argv: string[], io: Io = defaultIo): Promise<number> {
  const serve = async (file: string | undefined) => {
    const { logLevel } = readEnvironment();
    const log = createLogger(logLevel);
    const service = await startService({ configPath: resolveConfigPath(file), log });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, "shutting down");
        process.off("SIGHUP", hup);
        service.close().then(resolve, (err: unknown) => {
          log.error({ err: String(err) }, "shutdown failed");
          resolve();
        });
      };
      const hup = () => service.reload();
      process.on("SIGHUP", hup);
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
    });
    log.flush();
  };

  const program = buildProgram(io, serve);
  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help that was asked for exits 0; everything else commander refuses is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof ConfigError || err instanceof CliError) {
      io.err(`gatehouse: ${err.message}`);
      return 1;
    }
    io.err(`gatehouse: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
