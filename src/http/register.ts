import type { IncomingMessage } from "node:http";
import Router from "@koa/router";
import type { Middleware } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { registerPending, type RegisterDeps } from "../domain/registration.ts";
import { decodeRegistration, isJsonBody, readRequestBody } from "./body.ts";

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

/** One registration request, as both ways in (Koa's route and the front door) see it. */
export interface RegistrationCall {
  req: IncomingMessage;
  /** Whether it came over HTTPS (directly, or as the trusted proxy says). */
  secure: boolean;
  /** The peer address, as Koa's `ctx.ip` reads it (X-Forwarded-For's last value with trustProxy). */
  peer: string;
  /** The website's `ip` field, once the body has been read and has one. */
  endUserIp?: string;
}

/**
 * Reads, checks and stores one registration; resolves to the verification token the website gets.
 * Counts its outcome (accepted, or the refusal's code) whatever happens.
 */
export async function handleRegistration(deps: RegisterDeps & Pick<AppContext, "config" | "metrics">, call: RegistrationCall): Promise<string> {
  try {
    if (deps.config.register.secure && !call.secure) throw new AppError("HTTPS_REQUIRED", "registrations are only accepted over HTTPS");
    const body = await readRequestBody(call.req);
    const input = decodeRegistration(body, isJsonBody(call.req));
    call.endUserIp = input.ip;
    const pending = await registerPending(deps, input, call.peer);
    deps.metrics.countRegistration("accepted");
    return pending.token;
  } catch (err) {
    deps.metrics.countRegistration(err instanceof AppError ? err.code.toLowerCase() : "error");
    throw err;
  }
}

/** mod_register_json's servlet: POST {basePath} with a base64-encoded JSON registration. */
export function registerRouter(deps: RegisterDeps & Pick<AppContext, "config" | "metrics">): Router {
  const router = new Router();
  // Other methods get 405 with `Allow: POST` from the app's method fallback (DESIGN §3 row 1).
  // Most registrations never get here: src/http/front-door.ts answers them before Koa does.
  router.post(deps.config.register.basePath, async (ctx) => {
    const call: RegistrationCall = { req: ctx.req, secure: ctx.secure, peer: ctx.ip };
    try {
      const token = await handleRegistration(deps, call);
      ctx.type = "text/plain; charset=utf-8";
      ctx.set("Cache-Control", "no-store");
      ctx.body = token;
    } finally {
      if (call.endUserIp !== undefined) ctx.state.endUserIp = call.endUserIp;
    }
  });
  return router;
}
