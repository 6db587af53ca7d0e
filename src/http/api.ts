import Router from "@koa/router";
import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { acceptInvite, createInvite, describeIssuer, findLiveInvite, type AcceptDeps, type Issuer } from "../domain/invites.ts";
import { authenticateApiKey } from "../domain/keys.ts";
import { createSession, endSession, findSession, login, type LoginDeps } from "../domain/sessions.ts";
import { decodeUtf8, parseJson, readBody } from "./body.ts";
import { presentedKey } from "./invites-api.ts";
import { clearSessionCookie, readSessionCookie, refuseCrossSite, setSessionCookie } from "./session-cookie.ts";

export type ApiDeps = AcceptDeps & LoginDeps & Pick<AppContext, "metrics">;

/** The API speaks JSON only; requiring the type also keeps cross-site HTML forms out. */
async function readJsonObject(ctx: Context, { optional = false } = {}): Promise<Record<string, unknown>> {
  const body = await readBody(ctx);
  if (body.length === 0 && optional) return {};
  if (!ctx.is("application/json")) throw new AppError("UNSUPPORTED_MEDIA_TYPE", "send a JSON body with Content-Type: application/json");
  const value = parseJson(decodeUtf8(body));
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new AppError("MALFORMED_REQUEST", "body must be a JSON object");
  return value as Record<string, unknown>;
}

function stringField(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== "string") throw new AppError("MALFORMED_REQUEST", `${name} must be a string`);
  return value;
}

/** Pilcrow's invitation API and the login endpoints that go with it. */
export function apiRouter(deps: ApiDeps): Router {
  const router = new Router({ prefix: "/api" });

  router.use(async (ctx, next) => {
    ctx.set("Cache-Control", "no-store");
    await next();
  });

  /** The issuer of a new invite: an API key, or the logged-in account behind the cookie. */
  async function issuerOf(ctx: Context): Promise<Issuer> {
    const key = presentedKey(ctx, { key: typeof ctx.query["key"] === "string" ? ctx.query["key"] : undefined });
    if (key !== undefined) {
      const found = await authenticateApiKey(deps, key);
      if (!found) throw new AppError("API_KEY_INVALID", "a valid API key is required");
      return { kind: "key", id: found.id, name: found.name || found.id };
    }
    const session = await findSession(deps, readSessionCookie(ctx));
    if (!session) throw new AppError("UNAUTHENTICATED", "log in or present an API key");
    refuseCrossSite(ctx, deps.config);
    return { kind: "user", id: session.userId, name: session.username };
  }

  router.post("/invite", async (ctx) => {
    const issuer = await issuerOf(ctx);
    await readJsonObject(ctx, { optional: true });
    const created = await createInvite(deps, issuer);
    deps.metrics.countInvite(deps.metrics.invitesCreated, created.invite);
    ctx.body = {
      id: created.token,
      issuer: created.invite.issuerId,
      issued_at: new Date(created.invite.createdAt).toISOString(),
      expires_at: new Date(created.invite.expiresAt).toISOString(),
      url: created.url,
    };
  });

  /** Pilcrow answers 404 for every invite that cannot be used, whatever the reason. */
  const asNotFound = (err: unknown): never => {
    if (err instanceof AppError && err.code === "INVITE_GONE") throw new AppError("INVITE_NOT_FOUND", err.message);
    throw err;
  };

  router.get("/invite/:id", async (ctx) => {
    const invite = await findLiveInvite(deps, ctx.params["id"] ?? "").catch(asNotFound);
    ctx.body = {
      issuer: describeIssuer(invite),
      issued_at: new Date(invite.createdAt).toISOString(),
      expires_at: new Date(invite.expiresAt).toISOString(),
    };
  });

  router.post("/invite/:id", async (ctx) => {
    const body = await readJsonObject(ctx);
    const reason = body["reason"] === undefined ? undefined : stringField(body, "reason");
    const { account, invite, awaiting } = await acceptInvite(deps, ctx.params["id"] ?? "", stringField(body, "name"), stringField(body, "password"), undefined, reason).catch(asNotFound);
    deps.metrics.countInvite(deps.metrics.invitesAccepted, invite);
    if (awaiting) {
      // invites.requireApproval (DESIGN §11): nobody is logged in to an account a moderator has yet to approve.
      ctx.status = 202;
      ctx.body = { name: awaiting.username, status: "awaiting-approval" };
      return;
    }
    setSessionCookie(ctx, deps.config, await createSession(deps, account));
    ctx.status = 204;
  });

  router.post("/auth/login", async (ctx) => {
    const body = await readJsonObject(ctx);
    const session = await login(deps, stringField(body, "name"), stringField(body, "password"), ctx.ip).catch((err: unknown) => {
      const code = err instanceof AppError ? err.code : null;
      deps.metrics.logins.inc({ outcome: code === "TOO_MANY_ATTEMPTS" ? "limited" : code === "SERVER_BUSY" ? "busy" : "failed" });
      throw err;
    });
    deps.metrics.logins.inc({ outcome: "success" });
    setSessionCookie(ctx, deps.config, session);
    ctx.status = 204;
  });

  router.post("/auth/logout", async (ctx) => {
    refuseCrossSite(ctx, deps.config);
    await endSession(deps, readSessionCookie(ctx));
    clearSessionCookie(ctx, deps.config);
    ctx.status = 204;
  });

  router.get("/me", async (ctx) => {
    const session = await findSession(deps, readSessionCookie(ctx));
    if (!session) throw new AppError("UNAUTHENTICATED", "not logged in");
    ctx.body = { id: `u${session.userId}`, name: session.username };
  });

  return router;
}
