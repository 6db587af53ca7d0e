import type { Command } from "commander";
import { configWarnings, loadConfig, resolveConfigPath, type Config } from "../config.ts";
import { describeStorage } from "../config-report.ts";
import type { AppContext } from "../context.ts";
import { compileRules } from "../domain/filters.ts";
import { cryptoRandom, Sealer } from "../domain/secrets.ts";
import { CliError, configOption, type Io } from "./common.ts";

/** What the admin commands hand the domain functions: the same parts a running service uses. */
export type AdminContext = Pick<AppContext, "config" | "rules" | "store" | "clock" | "random" | "sealer" | "targets" | "secret">;

/** Loads the config a command names; its warnings go to stderr, apart from what the command prints. */
export function readConfig(io: Io, file: string | undefined): { path: string; config: Config } {
  const path = resolveConfigPath(file);
  const config = loadConfig(path);
  for (const warning of configWarnings(config, path)) io.err(`gatehouse: warning: ${warning}`);
  return { path, config };
}

export interface AdminOptions {
  /**
   * Create and migrate the store when it does not exist yet, as `serve` does: for commands that
   * make something (`keys create`). Without it a missing store is refused, naming where it was
   * looked for, instead of an empty one being made wherever a wrong config points.
   */
  createStore?: boolean;
}

/** Loads the config, opens its store for `use`, and closes the store whatever `use` does. */
export async function withAdminContext<T>(
  io: Io,
  file: string | undefined,
  use: (ctx: AdminContext) => Promise<T>,
  options: AdminOptions = {},
): Promise<T> {
  const { path, config } = readConfig(io, file);
  // Loaded here, not at the top: check-config and --version need none of the store, mail or account servers.
  const [{ ProvisionTargets }, { resolveSecret, systemClock }, { openStore, openExistingStore }] = await Promise.all([
    import("../accounts/from-config.ts"),
    import("../context.ts"),
    import("../store/open.ts"),
  ]);
  const warn = (message: string) => io.err(`gatehouse: warning: ${message}`);
  const store = options.createStore ? await openStore(config.storage, { warn }) : await openExistingStore(config.storage, { warn });
  if (!store) {
    throw new CliError(
      `no store at ${describeStorage(config.storage)} (storage in ${path}): nothing was stored there yet. ` +
        "Is this the config the service runs on? `gatehouse serve`, `keys create` and `invites create` create the store.",
    );
  }
  // Jobs for the account servers are sealed as the service seals them (`users delete`).
  const targets = new ProvisionTargets(config.accounts.provision);
  try {
    const secret = await resolveSecret(config, store, cryptoRandom, warn);
    return await use({ config, rules: compileRules(config), store, clock: systemClock, random: cryptoRandom, sealer: new Sealer(secret), targets, secret });
  } finally {
    await targets.close();
    await store.close();
  }
}

/**
 * Makes `command` an admin command: it takes --config, and its action runs `body` with the admin
 * context of that config, then the command's arguments and options as commander passes them.
 */
export function adminAction<A extends unknown[]>(
  command: Command,
  io: Io,
  body: (ctx: AdminContext, ...args: A) => Promise<void>,
  options: AdminOptions = {},
): Command {
  return command.addOption(configOption()).action(async (...args: unknown[]) => {
    // commander passes the arguments, then the options, then the command itself.
    const params = args.slice(0, -1) as A;
    const opts = params[params.length - 1] as { config?: string };
    await withAdminContext(io, opts.config, (ctx) => body(ctx, ...params), options);
  });
}
