import Router from "@koa/router";
import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { PowRefused } from "../domain/antibot.ts";
import { requestResend, type ResendFormDeps } from "../domain/resend.ts";
import { completeVerification, findVerification, type VerifyDeps } from "../domain/verification.ts";
import { guardSubmission, notePowTriggerFor, powWidgetFor, type AntibotRouteDeps } from "./antibot.ts";
import { readForm } from "./body.ts";
import { keepLanguage, pageLanguage, sendPage, shownError, wantsJson } from "./respond.ts";
import { refuseCrossSite } from "./session-cookie.ts";

export type VerifyRouteDeps = VerifyDeps & ResendFormDeps & AntibotRouteDeps & Pick<AppContext, "templates" | "metrics">;

// Real tokens are 43 characters; anything far longer is not worth hashing.
const MAX_TOKEN_LENGTH = 256;

function checkToken(token: string | undefined): string {
  const trimmed = (token ?? "").trim();
  if (trimmed.length === 0 || trimmed.length > MAX_TOKEN_LENGTH) {
    throw new AppError("TOKEN_UNKNOWN", "this verification code is unknown or has expired");
  }
  return trimmed;
}

async function complete(ctx: Context, deps: VerifyRouteDeps, token: string): Promise<void> {
  const result = await completeVerification(deps, checkToken(token)).catch((err: unknown) => {
    deps.metrics.verifications.inc({ outcome: "unknown" });
    throw err;
  });
  deps.metrics.verifications.inc({ outcome: result.alreadyActive ? "already_active" : result.awaitingApproval ? "awaiting_approval" : "created" });
  ctx.set("Cache-Control", "no-store");
  // `ready: false` only when an account server has yet to make the account; otherwise the answer is as it always was.
  if (wantsJson(ctx)) {
    ctx.body = {
      username: result.username,
      alreadyActive: result.alreadyActive,
      ...(result.provisioning === "shortly" ? { ready: false } : {}),
      ...(result.awaitingApproval ? { awaitingApproval: true } : {}),
    };
  }
  else sendPage(ctx, deps.templates, "verify-success", { ...result, shortly: result.provisioning === "shortly" });
}

/** The verification pages: Prosody's form, the mailed link's confirm page, and completion. */
export function verifyRouter(deps: VerifyRouteDeps): Router {
  const base = `${deps.config.register.basePath}verify/`;
  const router = new Router();
  router.use((ctx, next) => {
    ctx.state.page = true;
    ctx.state.verifyBase = base;
    return next();
  });

  const actions = (ctx: Context) => ({
    action: keepLanguage(ctx, deps.templates.languages, base),
    resendAction: keepLanguage(ctx, deps.templates.languages, `${base}resend`),
  });

  router.get(base, async (ctx) => {
    sendPage(ctx, deps.templates, "verify-form", { ...actions(ctx), pow: await powWidgetFor(ctx, deps) });
  });

  router.post(base, async (ctx) => {
    const form = await readForm(ctx);
    const typed = form["uuid"] ?? form["token"] ?? "";
    const code = typed.trim().slice(0, MAX_TOKEN_LENGTH);
    try {
      await guardSubmission(ctx, deps, "verify", form["altcha"]);
    } catch (err) {
      if (!(err instanceof PowRefused) || wantsJson(ctx)) throw err;
      sendPage(ctx, deps.templates, "verify-form", { ...actions(ctx), code, pow: await powWidgetFor(ctx, deps), powError: shownError(err) }, err.status);
      return;
    }
    try {
      await complete(ctx, deps, typed);
    } catch (err) {
      // A person at the form gets it back with the reason beside the field, to correct a typo.
      if (!(err instanceof AppError) || err.code !== "TOKEN_UNKNOWN" || wantsJson(ctx)) throw err;
      sendPage(ctx, deps.templates, "verify-form", { ...actions(ctx), error: shownError(err), code, pow: await powWidgetFor(ctx, deps) }, err.status);
    }
  });

  // Before `:token`: "resend" is no token (real ones are 43 characters), and this route answers first.
  router.get(`${base}resend`, async (ctx) => {
    sendPage(ctx, deps.templates, "verify-resend", { action: actions(ctx).resendAction, username: "", mail: "", pow: await powWidgetFor(ctx, deps) });
  });

  router.post(`${base}resend`, async (ctx) => {
    refuseCrossSite(ctx, deps.config);
    const form = await readForm(ctx);
    const username = form["username"] ?? "";
    const mail = form["mail"] ?? "";
    const again = async (err: AppError, fields: { error?: AppError; powError?: PowRefused; errorField?: "username" | "mail" }) => {
      if (err.options.retryAfter !== undefined) ctx.set("Retry-After", String(Math.max(1, err.options.retryAfter)));
      sendPage(ctx, deps.templates, "verify-resend", {
        action: actions(ctx).resendAction,
        username,
        mail,
        pow: await powWidgetFor(ctx, deps),
        error: fields.error && shownError(fields.error),
        powError: fields.powError && shownError(fields.powError),
        errorField: fields.errorField,
      }, err.status);
    };
    try {
      await guardSubmission(ctx, deps, "resend", form["altcha"]);
      const outcome = await requestResend(deps, { username, mail, lang: pageLanguage(ctx, deps.templates.languages) });
      deps.metrics.resends.inc({ outcome: outcome.replace("-", "_") });
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      if (err.code === "TOO_MANY_ATTEMPTS") {
        deps.metrics.resends.inc({ outcome: "rate_limited" });
        await notePowTriggerFor(ctx, deps);
      }
      if (wantsJson(ctx)) throw err;
      if (err instanceof PowRefused) return again(err, { powError: err });
      if (err.code === "TOO_MANY_ATTEMPTS") return again(err, { error: err });
      if (err.code === "MALFORMED_REQUEST") return again(err, { error: err, errorField: err.options.detail === "mail" || err.options.detail === "username" ? err.options.detail : undefined });
      throw err;
    }
    ctx.set("Cache-Control", "no-store");
    // One answer whatever happened: whether a registration has this name and address is not told.
    if (wantsJson(ctx)) ctx.body = { status: "accepted" };
    else sendPage(ctx, deps.templates, "verify-resent", { action: actions(ctx).action });
  });

  router.get(`${base}:token`, async (ctx) => {
    const token = checkToken(ctx.params["token"]);
    const view = await findVerification(deps, token);
    if (view.expiresAt === null) {
      sendPage(ctx, deps.templates, "verify-success", { username: view.username, alreadyActive: true, awaitingApproval: view.awaitingApproval });
      return;
    }
    sendPage(ctx, deps.templates, "verify-confirm", {
      action: keepLanguage(ctx, deps.templates.languages, `${base}${encodeURIComponent(token)}`),
      username: view.username,
      expiresAt: view.expiresAt,
    });
  });

  router.post(`${base}:token`, async (ctx) => {
    await complete(ctx, deps, ctx.params["token"] ?? "");
  });

  return router;
}
