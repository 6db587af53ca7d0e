import type { Command } from "commander";
import { createApiKey, deleteApiKey, listApiKeys } from "../domain/keys.ts";
import { adminAction } from "./admin-context.ts";
import { CliError, type Io } from "./common.ts";

export function registerKeys(program: Command, io: Io): void {
  const keys = program.command("keys").description("API keys for the invites API");
  const create = keys
    .command("create")
    .description("create a key and print ID/SECRET (shown only this once)")
    .argument("[name]", "a name to remember the key by", "");
  adminAction(create, io, async (ctx, name: string) => {
    io.out((await createApiKey(ctx, name)).key);
  }, { createStore: true });
  adminAction(keys.command("list").description("list keys: ID<TAB>NAME"), io, async (ctx) => {
    for (const key of await listApiKeys(ctx)) io.out(`${key.id}\t${key.name}`);
  });
  adminAction(keys.command("delete").description("delete a key; invites it made stay valid").argument("<id>"), io, async (ctx, id: string) => {
    if (!(await deleteApiKey(ctx, id))) throw new CliError(`no API key with id ${JSON.stringify(id)}`);
    io.out(`deleted ${id}`);
  });
}
