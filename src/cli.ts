import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { ConfigError, configWarnings, environmentOverrides, loadConfig, readEnvironment, resolveConfigPath, type Config } from "./config.ts";
import { systemClock } from "./context.ts";
import { compileRules, explainFilters } from "./domain/filters.ts";
import { createInvite, inviteState, listInvites, revokeInvite } from "./domain/invites.ts";
import { createApiKey, deleteApiKey, listApiKeys } from "./domain/keys.ts";
import { cryptoRandom } from "./domain/secrets.ts";
import { prepareUsername } from "./domain/username.ts";
import { createLogger } from "./log.ts";
import { availableParallelism } from "node:os";
import { runPrimary } from "./cluster.ts";
import { clusterBacking } from "./limiter-backing.ts";
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
  const store = await openStore(config.storage, { warn: (message) => defaultIo.err(`gatehouse: warning: ${message}`) });
  try {
    return await use(store, config);
  } finally {
    await store.close();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function positiveInt(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError("must be a positive whole number");
  return Number(value);
}

function parseWorkers(value: string): number {
  if (value === "auto") return availableParallelism();
  return positiveInt(value);
}

function buildProgram(io: Io, onServe: (file: string | undefined, workers: number) => Promise<void>): Command {
  const program = new Command("gatehouse")
    .description("a self-hosted signup gate")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) })
    .showHelpAfterError();

  program
    .command("serve")
    .description("run the service")
    .addOption(new Option("-w, --workers <n>", "processes sharing one listener; 'auto' = one per core").argParser(parseWorkers).default(1))
    .addOption(configOption())
    .action(async (opts: { config?: string; workers: number }) => onServe(opts.config, opts.workers));

  program
    .command("check-config")
    .description("validate a config file and exit")
    .addOption(configOption())
    .action((opts: { config?: string }) => {
      const { path, config } = readConfig(opts.config);
      compileRules(config);
      io.out(`config ok: ${path}`);
      // Where a value came from, never the value: these are often secrets.
      for (const { variable, path: key } of environmentOverrides().overrides) {
        io.out(`${key.join(".")}: from ${variable}`);
      }
      for (const warning of configWarnings(config)) io.err(`warning: ${warning}`);
    });

  const users = program.command("users").description("accounts");
  users
    .command("list")
    .description("list accounts: NAME<TAB>CREATED<TAB>MAIL<TAB>ORIGIN")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        for (const account of await store.listAccounts()) {
          const origin = account.invitedBy === null ? "registered" : `invited by ${account.invitedBy}`;
          io.out(`${account.username}\t${iso(account.createdAt)}\t${account.hasMail ? "mail" : "no-mail"}\t${origin}`);
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

  const pending = program.command("pending").description("pending registrations");
  pending
    .command("list")
    .description("list pending registrations: NAME<TAB>IP<TAB>CREATED<TAB>EXPIRES<TAB>MAIL-STATUS (queued, sent, failed, none)")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        for (const p of await store.listPending(Date.now())) {
          io.out(`${p.username}\t${p.ip}\t${iso(p.createdAt)}\t${iso(p.expiresAt)}\t${p.mailStatus}`);
        }
      });
    });
  pending
    .command("resend")
    .description("queue the verification mail of a pending registration again (after it failed), due now")
    .argument("<name>")
    .addOption(configOption())
    .action(async (name: string, opts: { config?: string }) => {
      const prepared = prepareUsername(name);
      const username = prepared.ok ? prepared.username : name;
      await withStore(opts.config, async (store) => {
        const result = await store.requeuePendingMail(username, Date.now());
        if (!result.ok) {
          const quoted = JSON.stringify(name);
          if (result.reason === "no-pending") throw new CliError(`no pending registration named ${quoted}`);
          if (result.reason === "sent") {
            throw new CliError(`the verification mail for ${quoted} was sent already; its content is not kept after sending`);
          }
          throw new CliError(`no verification mail is stored for ${quoted} (register.sendMail was off when it registered)`);
        }
        // A running service's sender picks it up at its next poll, within a second.
        io.out(`requeued the verification mail for ${username} (was ${result.previous})`);
      });
    });

  const keys = program.command("keys").description("API keys for the invites API");
  keys
    .command("create")
    .description("create a key and print ID/SECRET (shown only this once)")
    .argument("[name]", "a name to remember the key by", "")
    .addOption(configOption())
    .action(async (name: string, opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        const created = await createApiKey({ store, clock: systemClock, random: cryptoRandom }, name);
        io.out(created.key);
      });
    });
  keys
    .command("list")
    .description("list keys: ID<TAB>NAME")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        for (const key of await listApiKeys({ store })) io.out(`${key.id}\t${key.name}`);
      });
    });
  keys
    .command("delete")
    .description("delete a key; invites it made stay valid")
    .argument("<id>")
    .addOption(configOption())
    .action(async (id: string, opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        if (!(await deleteApiKey({ store }, id))) throw new CliError(`no API key with id ${JSON.stringify(id)}`);
        io.out(`deleted ${id}`);
      });
    });

  const invites = program.command("invites").description("invitations");
  invites
    .command("create")
    .description("create an invite and print its URL")
    .addOption(new Option("--uses <n>", "how many accounts it may create").argParser(positiveInt))
    .addOption(new Option("--ttl <seconds>", "lifetime in seconds (default invites.ttlSeconds)").argParser(positiveInt))
    .option("--username <name>", "only this username may be registered with it")
    .addOption(configOption())
    .action(async (opts: { uses?: number; ttl?: number; username?: string; config?: string }) => {
      await withStore(opts.config, async (store, config) => {
        const deps = { config, rules: compileRules(config), store, clock: systemClock, random: cryptoRandom };
        const created = await createInvite(deps, { kind: "admin" }, { uses: opts.uses, ttlSeconds: opts.ttl, username: opts.username });
        io.out(created.url);
      });
    });
  invites
    .command("list")
    .description("list invites: HANDLE<TAB>STATE<TAB>USES-LEFT/USES<TAB>EXPIRES<TAB>ISSUER<TAB>USERNAME")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        const now = Date.now();
        for (const invite of await listInvites({ store })) {
          const state = inviteState(invite, now) ?? "active";
          io.out(`${invite.handle}\t${state}\t${invite.usesLeft}/${invite.usesTotal}\t${iso(invite.expiresAt)}\t${invite.issuerName}\t${invite.username ?? ""}`);
        }
      });
    });
  invites
    .command("revoke")
    .description("withdraw an invite, named by its handle (or its link)")
    .argument("<ref>")
    .addOption(configOption())
    .action(async (ref: string, opts: { config?: string }) => {
      await withStore(opts.config, async (store) => {
        const invite = await revokeInvite({ store, clock: systemClock }, ref);
        if (!invite) throw new CliError(`no invite ${JSON.stringify(ref)}`);
        io.out(`revoked ${invite.handle}`);
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
  let exitCode = 0;
  const serve = async (file: string | undefined, workers: number) => {
    const { logLevel, workerRole } = readEnvironment();
    const log = createLogger(logLevel);
    const configPath = resolveConfigPath(file);
    if (workers > 1 && workerRole === null) {
      const config = loadConfig(configPath); // refuse a bad config here, before any worker starts
      exitCode = await runPrimary(workers, log, config.metrics.enabled ? config.metrics.listen : undefined);
      log.flush();
      return;
    }
    const service = await startService({
      configPath,
      log,
      background: workerRole !== "web",
      limiterBacking: workerRole === null ? undefined : clusterBacking,
      // In a cluster the primary serves the metrics listener, summed over all workers.
      clusterWorker: workerRole !== null,
    });
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
    // A worker's IPC channel to the primary would keep it alive after its server has closed.
    if (workerRole !== null) process.disconnect?.();
  };

  const program = buildProgram(io, serve);
  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return exitCode;
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
