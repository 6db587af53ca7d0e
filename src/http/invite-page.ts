import Router from "@koa/router";
import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { approvalRequired, MAX_REASON_LENGTH } from "../domain/approval.ts";
import { acceptInvite, findLiveInvite, type AcceptDeps } from "../domain/invites.ts";
import { PowRefused } from "../domain/antibot.ts";
import { createSession } from "../domain/sessions.ts";
import type { InviteRecord } from "../store/store.ts";
import { guardSubmission, powWidgetFor, type AntibotRouteDeps } from "./antibot.ts";
import { readForm } from "./body.ts";
import { keepLanguage, pageLanguage, sendPage, shownError } from "./respond.ts";
import { refuseCrossSite, setSessionCookie } from "./session-cookie.ts";

export type InvitePageDeps = AcceptDeps & AntibotRouteDeps & Pick<AppContext, "templates" | "metrics">;

// Refusals that are the person's to fix: the form comes back with the reason (beside the field it
// is about) and what they typed.
const FIXABLE = new Map<string, "username" | "password" | undefined>([
  ["USERNAME_INVALID", "username"],
  ["USERNAME_RESERVED", "username"],
  ["USERNAME_TAKEN", "username"],
  ["USERNAME_TAKEN_DOWNSTREAM", "username"],
  ["INVITE_NAME_MISMATCH", "username"],
  ["PASSWORD_TOO_SHORT", "password"],
  ["MALFORMED_REQUEST", undefined],
]);

/** The invite link's page: who invited you, and a signup form that works without JavaScript. */
export function invitePageRouter(deps: InvitePageDeps): Router {
  const router = new Router();
  router.use(async (ctx, next) => {
    ctx.state.page = true;
    await next();
  });

  async function showForm(
    ctx: Context,
    token: string,
    invite: InviteRecord,
    form: { username?: string; reason?: string; error?: AppError; powError?: PowRefused } = {},
    status = 200,
  ): Promise<void> {
    const pow = await powWidgetFor(ctx, deps);
    sendPage(ctx, deps.templates, "invite", {
      action: keepLanguage(ctx, deps.templates.languages, `/invite/${encodeURIComponent(token)}`),
      issuerName: invite.issuerName,
      boundUsername: invite.username ?? undefined,
      username: form.username ?? invite.username ?? "",
      error: form.error && shownError(form.error),
      errorField: form.error && FIXABLE.get(form.error.code),
      pow,
      powError: form.powError && shownError(form.powError),
      minPasswordLength: deps.config.accounts.minPasswordLength,
      expiresAt: invite.expiresAt,
      // DESIGN §11: when a moderator decides, the person may tell them why they are joining.
      askReason: approvalRequired(deps.config, "invite"),
      reason: form.reason ?? "",
      maxReasonLength: MAX_REASON_LENGTH,
    }, status);
  }

  // Prosody's links look like /invite?TOKEN; ours are /invite/TOKEN. Both work.
  router.get("/invite", async (ctx) => {
    let token = "";
    try {
      token = decodeURIComponent(ctx.querystring.split("&")[0] ?? "");
    } catch {
      // A broken %-escape cannot name a real invite (tokens are base64url); it is not a server error.
    }
    if (!token) throw new AppError("INVITE_NOT_FOUND", "this invitation does not exist");
    await showForm(ctx, token, await findLiveInvite(deps, token));
  });

  router.get("/invite/:token", async (ctx) => {
    const token = ctx.params["token"] ?? "";
    await showForm(ctx, token, await findLiveInvite(deps, token));
  });

  router.post("/invite/:token", async (ctx) => {
    refuseCrossSite(ctx, deps.config);
    const token = ctx.params["token"] ?? "";
    const invite = await findLiveInvite(deps, token);
    const form = await readForm(ctx);
    const username = form["username"] ?? "";
    const reason = form["reason"];
    try {
      await guardSubmission(ctx, deps, "invite", form["altcha"]);
    } catch (err) {
      if (err instanceof PowRefused) return showForm(ctx, token, invite, { username, reason, powError: err }, err.status);
      throw err;
    }
    try {
      const { account, provisioning, awaiting } = await acceptInvite(deps, token, username, form["password"] ?? "", pageLanguage(ctx, deps.templates.languages), reason);
      deps.metrics.countInvite(deps.metrics.invitesAccepted, invite);
      if (awaiting) {
        sendPage(ctx, deps.templates, "invite-success", { username: awaiting.username, awaitingApproval: true });
        return;
      }
      setSessionCookie(ctx, deps.config, await createSession(deps, account));
      sendPage(ctx, deps.templates, "invite-success", { username: account.username, shortly: provisioning === "shortly" });
    } catch (err) {
      if (err instanceof AppError && FIXABLE.has(err.code)) {
        await showForm(ctx, token, invite, { username, reason, error: err }, err.status);
        return;
      }
      throw err;
    }
  });

  return router;
}
