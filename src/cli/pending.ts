import type { Command } from "commander";
import { listPending, resendVerificationMail } from "../domain/pending.ts";
import { adminAction } from "./admin-context.ts";
import { CliError, iso, type Io } from "./common.ts";

export function registerPending(program: Command, io: Io): void {
  const pending = program.command("pending").description("pending registrations");
  const list = pending
    .command("list")
    .description(
      "list registrations waiting for their verification or for a moderator, after a header line: " +
        "NAME<TAB>IP<TAB>CREATED<TAB>EXPIRES<TAB>MAIL (queued, sent, failed, none)<TAB>STATE (verify, approval)<TAB>REASON",
    );
  adminAction(list, io, async (ctx) => {
    io.out(["NAME", "IP", "CREATED", "EXPIRES", "MAIL", "STATE", "REASON"].join("\t"));
    for (const p of await listPending(ctx)) {
      // The reason is the person's own text, stored without control characters (no tab, newline or escape).
      const state = p.state === "awaiting" ? "approval" : "verify";
      io.out(`${p.username}\t${p.ip}\t${iso(p.createdAt)}\t${iso(p.expiresAt)}\t${p.mailStatus}\t${state}\t${p.reason ?? "-"}`);
    }
  });
  const resend = pending
    .command("resend")
    .description("queue the verification mail of a pending registration again (after it failed), due now")
    .argument("<name>");
  adminAction(resend, io, async (ctx, name: string) => {
    const { username, result } = await resendVerificationMail(ctx, name);
    if (!result.ok) {
      const quoted = JSON.stringify(name);
      if (result.reason === "no-pending") throw new CliError(`no pending registration named ${quoted}`);
      if (result.reason === "sent") {
        throw new CliError(`the verification mail for ${quoted} was sent already; its content is not kept after sending`);
      }
      throw new CliError(`no verification mail is stored for ${quoted} (register.sendMail was off when it registered)`);
    }
    // A running service's sender picks it up at its next poll, within a second.
    io.out(`requeued the verification mail for ${username} (was ${result.previous})`);
  });
}
