import Router from "@koa/router";
import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { completeVerification, findVerification, type VerifyDeps } from "../domain/verification.ts";
import { readForm } from "./body.ts";
import { keepLanguage, sendPage, shownError, wantsJson } from "./respond.ts";

export type VerifyRouteDeps = VerifyDeps & Pick<AppContext, "templates" | "metrics">;

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

  router.get(base, (ctx) => {
    sendPage(ctx, deps.templates, "verify-form", { action: keepLanguage(ctx, deps.templates.languages, base) });
  });

  router.post(base, async (ctx) => {
    const form = await readForm(ctx);
    const typed = form["uuid"] ?? form["token"] ?? "";
    try {
      await complete(ctx, deps, typed);
    } catch (err) {
      // A person at the form gets it back with the reason beside the field, to correct a typo.
      if (!(err instanceof AppError) || err.code !== "TOKEN_UNKNOWN" || wantsJson(ctx)) throw err;
      sendPage(ctx, deps.templates, "verify-form", {
        action: keepLanguage(ctx, deps.templates.languages, base),
        error: shownError(err),
        code: typed.trim().slice(0, MAX_TOKEN_LENGTH),
      }, err.status);
    }
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
