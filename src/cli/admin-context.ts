import type { Command } from "commander";
import { ProvisionTargets } from "../accounts/from-config.ts";
import { loadConfig, resolveConfigPath, type Config } from "../config.ts";
import { resolveSecret, systemClock, type AppContext } from "../context.ts";
import { compileRules } from "../domain/filters.ts";
import { cryptoRandom, Sealer } from "../domain/secrets.ts";
import { openStore } from "../store/open.ts";
import { configOption, type Io } from "./common.ts";

/** What the admin commands hand the domain functions: the same parts a running service uses. */
export type AdminContext = Pick<AppContext, "config" | "rules" | "store" | "clock" | "random" | "sealer" | "targets" | "secret">;

export function readConfig(file: string | undefined): { path: string; config: Config } {
  const path = resolveConfigPath(file);
  return { path, config: loadConfig(path) };
}

/** Loads the config, opens its store for `use`, and closes the store whatever `use` does. */
export async function withAdminContext<T>(io: Io, file: string | undefined, use: (ctx: AdminContext) => Promise<T>): Promise<T> {
  const { config } = readConfig(file);
  const warn = (message: string) => io.err(`gatehouse: warning: ${message}`);
  const store = await openStore(config.storage, { warn });
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
export function adminAction<A extends unknown[]>(command: Command, io: Io, body: (ctx: AdminContext, ...args: A) => Promise<void>): Command {
  return command.addOption(configOption()).action(async (...args: unknown[]) => {
    // commander passes the arguments, then the options, then the command itself.
    const params = args.slice(0, -1) as A;
    const opts = params[params.length - 1] as { config?: string };
    await withAdminContext(io, opts.config, (ctx) => body(ctx, ...params));
  });
}
