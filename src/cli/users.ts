import type { Command } from "commander";
import { decideApproval } from "../domain/approval.ts";
import { deleteUser, deleteUserWithInvitees, listUsers, provisionUser, walkInviteTree, type InviteTreeNode } from "../domain/users.ts";
import { adminAction, type AdminContext } from "./admin-context.ts";
import { CliError, iso, type Io } from "./common.ts";
import { describeInviter, drawInviteTrees } from "./lineage.ts";

function countInvitees(tree: InviteTreeNode): number {
  let count = -1;
  walkInviteTree(tree, () => void count++);
  return count;
}

export function registerUsers(program: Command, io: Io): void {
  const users = program.command("users").description("accounts");
  adminAction(
    users.command("list").description("list accounts under a header: NAME, CREATED, MAIL, INVITED BY, then TARGET=STATE per account server"),
    io,
    async (ctx) => {
      const accounts = await listUsers(ctx);
      if (accounts.length === 0) return;
      io.out(["NAME", "CREATED", "MAIL", "INVITED BY", "ACCOUNT SERVERS"].join("\t"));
      for (const account of accounts) {
        const targets = account.targets.map((t) => `\t${t.target}=${t.state}`).join("");
        io.out(`${account.username}\t${iso(account.createdAt)}\t${account.hasMail ? "mail" : "no-mail"}\t${describeInviter(account)}${targets}`);
      }
    },
  );
  const remove = users
    .command("delete")
    .description("delete an account, free its mail address, and remove it from every account server; the accounts it invited stay unless --with-invitees")
    .argument("<name>")
    .option("--with-invitees", "also delete every account it invited, and those they invited, all the way down")
    .option("--dry-run", "only list what would be deleted; change nothing");
  adminAction(remove, io, async (ctx, name: string, opts: { withInvitees?: boolean; dryRun?: boolean }) => {
    const missing = () => new CliError(`no account named ${JSON.stringify(name)}`);
    if (!opts.withInvitees && !opts.dryRun) {
      const deleted = await deleteUser(ctx, name);
      if (deleted === null) throw missing();
      io.out(`deleted ${deleted}`);
      return;
    }
    // A dry run shows the tree either way: without --with-invitees, it shows who would stay.
    const result = await deleteUserWithInvitees(ctx, name, { dryRun: opts.dryRun || !opts.withInvitees });
    if (result === null) throw missing();
    const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    if (!opts.dryRun) {
      for (const deleted of result.deleted) io.out(`deleted ${deleted}`);
      if (result.invitesWithdrawn > 0) io.out(`withdrew ${plural(result.invitesWithdrawn, "unused invite")} they had made`);
      return;
    }
    for (const line of drawInviteTrees([result.tree])) io.out(line);
    const invitees = countInvitees(result.tree);
    io.out(
      opts.withInvitees
        ? `dry run: ${plural(invitees + 1, "account")} would be deleted and ${plural(result.invitesWithdrawn, "unused invite")} they made withdrawn; nothing was changed`
        : `dry run: ${result.tree.account.username} would be deleted; the ${plural(invitees, "account")} it invited would stay; nothing was changed`,
    );
  });
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
