import { randomUUID } from "node:crypto";
import type Router from "@koa/router";
import Koa from "koa";
import type { Context, Next } from "koa";
import type { Logger } from "pino";
import type { AppContext } from "./context.ts";
import { AppError } from "./errors.ts";
import { antibotRouter } from "./http/antibot.ts";
import { apiRouter } from "./http/api.ts";
import { approvalRouter } from "./http/approval.ts";
import { invitePageRouter } from "./http/invite-page.ts";
import { invitesApiRouter } from "./http/invites-api.ts";
import { opsRouter } from "./http/ops.ts";
import { warmDecoder } from "./http/body.ts";
import { lastForwarded } from "./http/forwarded.ts";
import { withFrontDoor } from "./http/front-door.ts";
import { connectionError, failureAnswer, plainFailure, reportFailure, type FailedRequest } from "./http/failure.ts";
import { answerHeaders, noteAnswered } from "./http/request-log.ts";
import { registerRouter, registerWithoutTrailingSlash } from "./http/register.ts";
import { keepLanguage, sendPage, shownError, wantsHtml, wantsJson } from "./http/respond.ts";
import { verifyRouter } from "./http/verify.ts";
import { refusalLog, requestLogger, type RefusalLog } from "./log.ts";

/** The matched route pattern, never the raw path: verify URLs carry tokens. */
function routeOf(ctx: Context): string {
  return (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? "(unmatched)";
}

/** The request as the failure path names it; kept on the context so a client fault is counted once. */
function failedRequest(ctx: Context): FailedRequest {
  const state = ctx.state as { failed?: FailedRequest; reqId?: string; endUserIp?: string };
  const peer = ctx.ip;
  state.failed ??= { reqId: String(state.reqId), method: ctx.method, route: routeOf(ctx), ip: peer, peer, socket: ctx.req.socket };
  state.failed.route = routeOf(ctx);
  state.failed.ip = state.endUserIp ?? peer;
  return state.failed;
}

function errorMiddleware(deps: Pick<AppContext, "log" | "templates" | "metrics" | "writeHealth">, requests: Logger, refusals: RefusalLog) {
  return async (ctx: Context, next: Next) => {
    try {
      await next();
    } catch (err) {
      const refusal = reportFailure(deps, requests, refusals, err, failedRequest(ctx));
      const answer = failureAnswer(refusal);
      const { status, code, message } = answer;
      for (const [name, value] of answer.headers) ctx.set(name, value);
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
      } else {
        const plain = plainFailure(answer, json);
        ctx.status = status;
        ctx.type = plain.type;
        ctx.body = plain.body;
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
    const reqId = randomUUID();
    ctx.state.reqId = reqId;
    for (const [name, value] of answerHeaders(reqId)) ctx.set(name, value);
    const started = performance.now();
    try {
      await next();
    } finally {
      noteAnswered(deps, requests, { reqId, method: ctx.method, route: routeOf(ctx), status: ctx.status, started });
    }
  };
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
  const refusals = refusalLog(ctx.log);
  warmDecoder();
  app.use(requestLog(ctx, requests));
  app.use(errorMiddleware(ctx, requests, refusals));
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
    connectionError(ctx, requests, koaCtx ? failedRequest(koaCtx) : null, err);
  });
  // Whoever serves the app (src/main.ts, the test harness) serves registrations through the front door.
  const koaCallback = app.callback.bind(app);
  app.callback = () => (koaOnly.has(app) ? koaCallback() : (withFrontDoor(ctx, requests, refusals, koaCallback()) as ReturnType<Koa["callback"]>));
  return app;
}

const koaOnly = new WeakSet<Koa>();

/**
 * Serves registrations through Koa's route too, as every other request: for a test that must see
 * every answer in Koa's middleware (the OpenAPI recording) or compare the two ways in.
 */
export function withoutFrontDoor(app: Koa): void {
  koaOnly.add(app);
}
