import type { Command } from "commander";
import { createApiKey, deleteApiKey, listApiKeys } from "../domain/keys.ts";
import { withAdminContext } from "./admin-context.ts";
import { CliError, configOption, type Io } from "./common.ts";

export function registerKeys(program: Command, io: Io): void {
  const keys = program.command("keys").description("API keys for the invites API");
  keys
    .command("create")
    .description("create a key and print ID/SECRET (shown only this once)")
    .argument("[name]", "a name to remember the key by", "")
    .addOption(configOption())
    .action(async (name: string, opts: { config?: string }) => {
      await withAdminContext(io, opts.config, async (ctx) => {
        const created = await createApiKey(ctx, name);
        io.out(created.key);
      });
    });
  keys
    .command("list")
    .description("list keys: ID<TAB>NAME")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withAdminContext(io, opts.config, async (ctx) => {
        for (const key of await listApiKeys(ctx)) io.out(`${key.id}\t${key.name}`);
      });
    });
  keys
    .command("delete")
    .description("delete a key; invites it made stay valid")
    .argument("<id>")
    .addOption(configOption())
    .action(async (id: string, opts: { config?: string }) => {
      await withAdminContext(io, opts.config, async (ctx) => {
        if (!(await deleteApiKey(ctx, id))) throw new CliError(`no API key with id ${JSON.stringify(id)}`);
        io.out(`deleted ${id}`);
      });
    });
}
