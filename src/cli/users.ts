import type { Command } from "commander";
import { deleteUser, listUsers, provisionUser } from "../domain/users.ts";
import { adminAction } from "./admin-context.ts";
import { CliError, iso, type Io } from "./common.ts";

export function registerUsers(program: Command, io: Io): void {
  const users = program.command("users").description("accounts");
  adminAction(
    users.command("list").description("list accounts: NAME<TAB>CREATED<TAB>MAIL<TAB>ORIGIN, then TARGET=STATE per account server"),
    io,
    async (ctx) => {
      for (const account of await listUsers(ctx)) {
        const origin = account.invitedBy === null ? "registered" : `invited by ${account.invitedBy}`;
        const targets = account.targets.map((t) => `\t${t.target}=${t.state}`).join("");
        io.out(`${account.username}\t${iso(account.createdAt)}\t${account.hasMail ? "mail" : "no-mail"}\t${origin}${targets}`);
      }
    },
  );
  adminAction(
    users.command("delete").description("delete an account, free its mail address, and remove it from every account server").argument("<name>"),
    io,
    async (ctx, name: string) => {
      const deleted = await deleteUser(ctx, name);
      if (deleted === null) throw new CliError(`no account named ${JSON.stringify(name)}`);
      io.out(`deleted ${deleted}`);
    },
  );
  adminAction(
    users.command("provision").description("retry now an account's waiting or failed jobs on the account servers").argument("<name>"),
    io,
    async (ctx, name: string) => {
      const result = await provisionUser(ctx, name);
      if (result === null) throw new CliError(`no account named ${JSON.stringify(name)}`);
      io.out(`${result.username}: ${result.jobs} job${result.jobs === 1 ? "" : "s"} queued`);
    },
  );
}
