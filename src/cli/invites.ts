import { Option, type Command } from "commander";
import { createInvite, inviteState, listInvites, revokeInvite } from "../domain/invites.ts";
import { inviteTree } from "../domain/users.ts";
import { adminAction } from "./admin-context.ts";
import { CliError, iso, positiveInt, type Io } from "./common.ts";
import { drawInviteTrees } from "./lineage.ts";

export function registerInvites(program: Command, io: Io): void {
  const invites = program.command("invites").description("invitations");
  const create = invites
    .command("create")
    .description("create an invite and print its URL")
    .addOption(new Option("--uses <n>", "how many accounts it may create").argParser(positiveInt))
    .addOption(new Option("--ttl <seconds>", "lifetime in seconds (default invites.ttlSeconds)").argParser(positiveInt))
    .option("--username <name>", "only this username may be registered with it");
  adminAction(create, io, async (ctx, opts: { uses?: number; ttl?: number; username?: string }) => {
    const created = await createInvite(ctx, { kind: "admin" }, { uses: opts.uses, ttlSeconds: opts.ttl, username: opts.username });
    io.out(created.url);
  }, { createStore: true });
  const list = invites.command("list").description("list invites: HANDLE<TAB>STATE<TAB>USES-LEFT/USES<TAB>EXPIRES<TAB>ISSUER<TAB>USERNAME");
  adminAction(list, io, async (ctx) => {
    const now = ctx.clock.now();
    for (const invite of await listInvites(ctx)) {
      const state = inviteState(invite, now) ?? "active";
      io.out(`${invite.handle}\t${state}\t${invite.usesLeft}/${invite.usesTotal}\t${iso(invite.expiresAt)}\t${invite.issuerName}\t${invite.username ?? ""}`);
    }
  });
  const tree = invites
    .command("tree")
    .description("who invited whom: the accounts NAME invited, and those they invited, all the way down (every account without NAME)")
    .argument("[name]");
  adminAction(tree, io, async (ctx, name: string | undefined) => {
    const roots = await inviteTree(ctx, name);
    if (roots === null) throw new CliError(`no account named ${JSON.stringify(name)}`);
    for (const line of drawInviteTrees(roots)) io.out(line);
  });
  const revoke = invites.command("revoke").description("withdraw an invite, named by its handle (or its link)").argument("<ref>");
  adminAction(revoke, io, async (ctx, ref: string) => {
    const invite = await revokeInvite(ctx, ref);
    if (!invite) throw new CliError(`no invite ${JSON.stringify(ref)}`);
    io.out(`revoked ${invite.handle}`);
  });
}
