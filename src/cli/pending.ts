import type { Command } from "commander";
import { listPending } from "../domain/pending.ts";
import { adminResend } from "../domain/resend.ts";
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
    .description(
      "send the verification mail of a pending registration again: without --mail, the mail still waiting in the outbox " +
        "(queued or failed) is queued again, due now; with --mail ADDRESS (the address it registered with), a new link " +
        "replaces the old one, at most register.resendLimit times",
    )
    .argument("<name>")
    .option("--mail <address>", "the address the registration was made with (the store keeps only its keyed hash)");
  adminAction(resend, io, async (ctx, name: string, opts: { mail?: string }) => {
    const quoted = JSON.stringify(name);
    if (opts.mail !== undefined && !ctx.config.register.sendMail) {
      throw new CliError("register.sendMail is off: gatehouse sends no verification mail, the website does");
    }
    const done = await adminResend(ctx, name, opts.mail);
    if (done.kind === "requeued") {
      const { result } = done;
      if (!result.ok) {
        if (result.reason === "no-pending") throw new CliError(`no pending registration named ${quoted}`);
        if (result.reason === "sent") {
          throw new CliError(
            `the verification mail for ${quoted} was sent already, and its address is not kept after sending; ` +
              `to send a new link, give the address it registered with: pending resend ${name} --mail ADDRESS`,
          );
        }
        throw new CliError(`no verification mail is stored for ${quoted} (register.sendMail was off when it registered)`);
      }
      // A running service's sender picks it up at its next poll, within a second.
      io.out(`requeued the verification mail for ${done.username} (was ${result.previous})`);
      return;
    }
    const { result } = done;
    if (!result.ok) {
      if (result.reason === "no-pending") throw new CliError(`no pending registration named ${quoted}`);
      if (result.reason === "mismatch") throw new CliError(`that is not the address ${quoted} registered with`);
      throw new CliError(`the resend limit (register.resendLimit: ${ctx.config.register.resendLimit}) for ${quoted} is reached`);
    }
    io.out(`queued a new verification link for ${done.username} (resend ${result.resends} of ${ctx.config.register.resendLimit}); the old link no longer works`);
  });
}
