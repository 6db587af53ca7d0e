import Router from "@koa/router";
import type { Context, Middleware } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { registerPending, type RegisterDeps } from "../domain/registration.ts";
import { decodeRegistration, readBody } from "./body.ts";

/**
 * Prosody serves the servlet with and without its trailing slash (DESIGN §3): the bare path is
 * routed as the registration route itself, so it answers, logs and counts the same.
 */
export function registerWithoutTrailingSlash(basePath: string): Middleware {
  const bare = basePath.replace(/\/$/, "");
  return async (ctx, next) => {
    if (bare !== "" && ctx.path === bare) ctx.path = basePath;
    await next();
  };
}

/** mod_register_json's servlet: POST {basePath} with a base64-encoded JSON registration. */
export function registerRouter(deps: RegisterDeps & Pick<AppContext, "config" | "metrics">): Router {
  const router = new Router();
  // Other methods get 405 with `Allow: POST` from the app's method fallback (DESIGN §3 row 1).
  router.post(deps.config.register.basePath, async (ctx) => {
    try {
      await register(ctx);
      deps.metrics.countRegistration("accepted");
    } catch (err) {
      deps.metrics.countRegistration(err instanceof AppError ? err.code.toLowerCase() : "error");
      throw err;
    }
  });

  const register = async (ctx: Context) => {
    if (deps.config.register.secure && !ctx.secure) throw new AppError("HTTPS_REQUIRED", "registrations are only accepted over HTTPS");
    const body = await readBody(ctx);
    const input = decodeRegistration(body, ctx.is("application/json") === "application/json");
    ctx.state.endUserIp = input.ip;
    const pending = await registerPending(deps, input, ctx.ip);
    ctx.type = "text/plain; charset=utf-8";
    ctx.set("Cache-Control", "no-store");
    ctx.body = pending.token;
  };
  return router;
}
