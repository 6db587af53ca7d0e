import type { Command } from "commander";
import { decideApproval } from "../domain/approval.ts";
import { deleteUser, listUsers, provisionUser } from "../domain/users.ts";
import { adminAction, type AdminContext } from "./admin-context.ts";
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
  adminAction(
    users.command("approve").description("approve a registration waiting for a moderator: the account is made, provisioned and its owner mailed").argument("<name>"),
    io,
    async (ctx, name: string) => {
      const result = await decideApproval(approvalDeps(ctx), { username: name }, { decision: "approve" });
      if (result?.decision !== "approve") throw new CliError(`no registration named ${JSON.stringify(name)} is waiting for approval`);
      io.out(`approved ${result.account.username}`);
    },
  );
  adminAction(
    users
      .command("reject")
      .description("reject a registration waiting for a moderator: it is removed and its owner mailed, with the reason if given")
      .argument("<name>")
      .option("--reason <text>", "why, for the person (at most 500 characters)"),
    io,
    async (ctx, name: string, options: { reason?: string }) => {
      const result = await decideApproval(approvalDeps(ctx), { username: name }, { decision: "reject", reason: options.reason });
      if (result?.decision !== "reject") throw new CliError(`no registration named ${JSON.stringify(name)} is waiting for approval`);
      io.out(`rejected ${result.record.username}`);
    },
  );
}

/**
 * The command prints what it did itself; the decision's mail, events and jobs wait in the outbox
 * for the running service's sender, which polls it.
 */
function approvalDeps(ctx: AdminContext) {
  return { ...ctx, log: { info: () => {} }, notifyOutbox: () => {} };
}
