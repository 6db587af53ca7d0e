import { randomUUID } from "node:crypto";
import type Router from "@koa/router";
import Koa from "koa";
import type { Context, Next } from "koa";
import type { Logger } from "pino";
import type { AppContext } from "./context.ts";
import { storageFullError } from "./domain/write-health.ts";
import { AppError, isAppError, isStoreUnavailable } from "./errors.ts";
import { antibotRouter } from "./http/antibot.ts";
import { apiRouter } from "./http/api.ts";
import { approvalRouter } from "./http/approval.ts";
import { invitePageRouter } from "./http/invite-page.ts";
import { invitesApiRouter } from "./http/invites-api.ts";
import { opsRouter } from "./http/ops.ts";
import { warmDecoder } from "./http/body.ts";
import { registerRouter, registerWithoutTrailingSlash } from "./http/register.ts";
import { keepLanguage, sendPage, shownError, wantsHtml, wantsJson } from "./http/respond.ts";
import { verifyRouter } from "./http/verify.ts";
import { refusalLog, requestLogger, type RefusalLog } from "./log.ts";
import { isStorageFull } from "./store/errors.ts";

interface HttpishError {
  status?: number;
  expose?: boolean;
  message?: string;
}

/** Turns anything thrown into an AppError; unexpected errors stay unexpected (500). */
function classify(err: unknown): AppError | null {
  if (isAppError(err)) return err;
  if (isStorageFull(err)) return storageFullError();
  const e = err as HttpishError;
  if (e && typeof e.status === "number" && e.status >= 400 && e.status < 500) {
    if (e.status === 404) return new AppError("NOT_FOUND", "not found");
    if (e.status === 413) return new AppError("BODY_TOO_LARGE", "body too large");
    if (e.status === 415) return new AppError("UNSUPPORTED_MEDIA_TYPE", "unsupported media type");
    return new AppError("MALFORMED_REQUEST", e.expose && e.message ? e.message : "bad request");
  }
  return null;
}

/** The matched route pattern, never the raw path: verify URLs carry tokens. */
function routeOf(ctx: Context): string {
  return (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? "(unmatched)";
}

export type ClientFault = "timeout" | "aborted" | "parse";

/** Errors that are the client's doing (too slow, gone, not speaking HTTP): never error-level lines. */
export function clientFaultOf(err: unknown): ClientFault | null {
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return "timeout";
  // A connection closed in the middle of a request: the parser reports it, but nothing was malformed.
  if (code === "HPE_INVALID_EOF_STATE") return "aborted";
  if (code.startsWith("HPE_")) return "parse";
  if (["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"].includes(code)) return "aborted";
  return null;
}

/**
 * Counts a request the client did not finish, once: Node reports one fault both to Koa's error
 * event and, as a body that could not be read, to the error middleware, in either order.
 */
function noteClientFault(deps: Pick<AppContext, "metrics">, requests: Logger, ctx: Context, fault: ClientFault, reason: string): void {
  if (ctx.state.clientFault) return;
  ctx.state.clientFault = fault;
  deps.metrics.clientErrors.inc({ reason: fault });
  requests.debug({ reqId: ctx.state.reqId, method: ctx.method, route: routeOf(ctx), fault, reason }, "client did not finish the request");
}

function errorMiddleware(deps: Pick<AppContext, "log" | "templates" | "metrics" | "writeHealth">, requests: Logger, refusals: RefusalLog) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      const refusal = classify(err);
      deps.writeHealth.noteFailure(err);
      // The operator's problem, not the client's: said at error level besides the refusal line.
      if (refusal?.code === "STORAGE_FULL") deps.log.error({ reqId: ctx.state.reqId, route: routeOf(ctx) }, "store is full");
      if (!refusal) {
        deps.log.error({ reqId: ctx.state.reqId, err: err instanceof Error ? err.stack : String(err) }, "unexpected error");
      } else if (refusal.code === "REQUEST_INCOMPLETE") {
        // The socket keeps why it ended (a request timeout, a reset); a plain close leaves nothing.
        noteClientFault(deps, requests, ctx, clientFaultOf(ctx.req.socket.errored) ?? "aborted", refusal.message);
      } else {
        // Every refusal is logged with its reason and the end-user IP (the website's, when it said so).
        // A database outage is the operator's to notice, but no fault of ours: warn.
        const peer = ctx.ip;
        refusals(isStoreUnavailable(refusal) ? "warn" : "info", {
          reqId: String(ctx.state.reqId),
          method: ctx.method,
          route: routeOf(ctx),
          status: refusal.status,
          code: refusal.code,
          reason: refusal.message,
          ip: ctx.state.endUserIp ?? peer,
          peer,
        });
      }
      const status = refusal?.status ?? 500;
      const code = refusal?.code ?? "INTERNAL_ERROR";
      const message = refusal?.message ?? "internal error";
      if (refusal?.options.retryAfter !== undefined) ctx.set("Retry-After", String(Math.max(1, refusal.options.retryAfter)));
      if (refusal?.options.allow) ctx.set("Allow", refusal.options.allow.join(", "));
      ctx.set("Cache-Control", "no-store");
      const json = wantsJson(ctx);
      // Our pages' routes answer browsers with pages. Elsewhere only a path or method nothing
      // serves does, and only for a client that names text/html: the APIs keep their plain answers.
      const lost = code === "NOT_FOUND" || code === "METHOD_NOT_ALLOWED";
      if ((ctx.state.page || (lost && wantsHtml(ctx))) && !json) {
        const verifyBase = ctx.state.verifyBase as string | undefined;
        if (code === "TOKEN_UNKNOWN" && verifyBase) {
          sendPage(ctx, deps.templates, "verify-failure", {
            action: keepLanguage(ctx, deps.templates.languages, verifyBase),
            resendAction: keepLanguage(ctx, deps.templates.languages, `${verifyBase}resend`),
          }, status);
        } else {
          sendPage(ctx, deps.templates, "error", { status, error: refusal ? shownError(refusal) : { code, message } }, status);
        }
      } else if (json) {
        ctx.status = status;
        ctx.body = { error: code, message };
      } else {
        ctx.status = status;
        ctx.type = "text/plain; charset=utf-8";
        ctx.body = message;
      }
    }
  };
}

/**
 * What no route answered: 405 naming the methods the path does have, else 404. (The router's own
 * allowedMethods() leaves Allow empty for `all` routes and answers 501 for methods it does not know.)
 */
function methodFallback(deps: Pick<AppContext, "config" | "templates">, routers: Router[]) {
  return async (ctx: Context, next: Next) => {
    await next();
    if (ctx.status !== 404 || ctx.body != null) return;
    // `/` is nothing to an API client (404 as ever), but a person who opens the bare address gets a page.
    if (ctx.path === "/" && (ctx.method === "GET" || ctx.method === "HEAD") && wantsHtml(ctx)) {
      sendPage(ctx, deps.templates, "home", { verifyPath: keepLanguage(ctx, deps.templates.languages, `${deps.config.register.basePath}verify/`) });
      return;
    }
    const allowed = new Set<string>();
    for (const router of routers) {
      for (const layer of router.match(ctx.path, ctx.method).path) for (const method of layer.methods) allowed.add(method);
    }
    if (allowed.size > 0) throw new AppError("METHOD_NOT_ALLOWED", "method not allowed", { allow: [...allowed] });
    throw new AppError("NOT_FOUND", "not found");
  };
}

function requestLog(deps: Pick<AppContext, "config" | "metrics">, requests: Logger) {
  return async (ctx: Context, next: Next) => {
    ctx.state.reqId = randomUUID();
    ctx.set("X-Request-Id", ctx.state.reqId);
    ctx.set("X-Content-Type-Options", "nosniff");
    ctx.set("Referrer-Policy", "no-referrer");
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const route = routeOf(ctx);
      deps.metrics.countRequest(route, ctx.method, ctx.status, seconds);
      requests.debug({ reqId: ctx.state.reqId, method: ctx.method, route, status: ctx.status, ms: Math.round(seconds * 1000) }, "request");
    }
  };
}

/** The last of a comma-separated header's values: the one the nearest proxy added. */
function lastForwarded(value: string): string {
  const values = value.split(",").map((v) => v.trim()).filter((v) => v !== "");
  return values[values.length - 1] ?? "";
}

/**
 * With trustProxy, Koa takes the first X-Forwarded-Proto and X-Forwarded-Host value, which the
 * client may have written itself; the last is the one our proxy added. (X-Forwarded-For is
 * already read from the end: maxIpsCount 1.)
 */
function trustLastHop(app: Koa): void {
  const koaRequest = Object.getPrototypeOf(app.request) as object;
  const koaHost = Object.getOwnPropertyDescriptor(koaRequest, "host")!.get!;
  Object.defineProperties(app.request, {
    protocol: {
      get(this: Koa.Request): string {
        if ((this.socket as { encrypted?: boolean }).encrypted) return "https";
        const forwarded = this.app.proxy ? lastForwarded(this.get("X-Forwarded-Proto")).toLowerCase() : "";
        return forwarded || "http";
      },
    },
    host: {
      get(this: Koa.Request): string {
        const forwarded = this.app.proxy ? lastForwarded(this.get("X-Forwarded-Host")) : "";
        return forwarded || (koaHost.call(this) as string);
      },
    },
  });
}

export function createApp(ctx: AppContext): Koa {
  const app = new Koa({ maxIpsCount: 1 });
  // trustProxy is live: Koa asks app.proxy on each use (ip, protocol, host), and gets the current config's answer.
  Object.defineProperty(app, "proxy", { get: () => ctx.config.trustProxy, enumerable: true });
  app.silent = true;
  trustLastHop(app);
  const requests = requestLogger(ctx.log);
  warmDecoder();
  app.use(requestLog(ctx, requests));
  app.use(errorMiddleware(ctx, requests, refusalLog(ctx.log)));
  app.use(registerWithoutTrailingSlash(ctx.config.register.basePath));
  const routers = [
    registerRouter(ctx),
    verifyRouter(ctx),
    approvalRouter(ctx),
    invitesApiRouter(ctx),
    apiRouter(ctx),
    invitePageRouter(ctx),
    opsRouter(ctx),
    antibotRouter(ctx),
  ];
  app.use(methodFallback(ctx, routers));
  for (const router of routers) app.use(router.routes());
  // What reaches Koa's own handler is mostly a client that was too slow, went away or sent what
  // Node could not parse: its fault, so it must not be able to fill the error log with them.
  app.on("error", (err: unknown, koaCtx?: Context) => {
    const fault = clientFaultOf(err);
    if (fault && koaCtx) noteClientFault(ctx, requests, koaCtx, fault, String(err));
    else if (fault) ctx.log.debug({ fault, reason: String(err) }, "client connection error");
    else ctx.log.error({ err: String(err) }, "koa error");
  });
  return app;
}
