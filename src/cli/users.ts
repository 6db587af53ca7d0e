import type { Command } from "commander";
import { deleteUser, listUsers } from "../domain/users.ts";
import { adminAction } from "./admin-context.ts";
import { CliError, iso, type Io } from "./common.ts";

export function registerUsers(program: Command, io: Io): void {
  const users = program.command("users").description("accounts");
  adminAction(users.command("list").description("list accounts: NAME<TAB>CREATED<TAB>MAIL<TAB>ORIGIN"), io, async (ctx) => {
    for (const account of await listUsers(ctx)) {
      const origin = account.invitedBy === null ? "registered" : `invited by ${account.invitedBy}`;
      io.out(`${account.username}\t${iso(account.createdAt)}\t${account.hasMail ? "mail" : "no-mail"}\t${origin}`);
    }
  });
  adminAction(users.command("delete").description("delete an account and free its mail address").argument("<name>"), io, async (ctx, name: string) => {
    const deleted = await deleteUser(ctx, name);
    if (deleted === null) throw new CliError(`no account named ${JSON.stringify(name)}`);
    io.out(`deleted ${deleted}`);
  });
}
