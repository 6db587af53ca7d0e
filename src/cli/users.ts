import type { Command } from "commander";
import { deleteUser, listUsers } from "../domain/users.ts";
import { withAdminContext } from "./admin-context.ts";
import { CliError, configOption, iso, type Io } from "./common.ts";

export function registerUsers(program: Command, io: Io): void {
  const users = program.command("users").description("accounts");
  users
    .command("list")
    .description("list accounts: NAME<TAB>CREATED<TAB>MAIL<TAB>ORIGIN")
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      await withAdminContext(io, opts.config, async (ctx) => {
        for (const account of await listUsers(ctx)) {
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
      await withAdminContext(io, opts.config, async (ctx) => {
        const deleted = await deleteUser(ctx, name);
        if (deleted === null) throw new CliError(`no account named ${JSON.stringify(name)}`);
        io.out(`deleted ${deleted}`);
      });
    });
}
