import Router from "@koa/router";
import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { createInvite, type InviteDeps } from "../domain/invites.ts";
import { authenticateApiKey } from "../domain/keys.ts";
import { decodeUtf8, parseJson, readBody, readForm } from "./body.ts";

// As mod_invites_api: any origin may call it, the key is what authorizes.
function setCors(ctx: Context): void {
  ctx.set("Access-Control-Allow-Origin", "*");
  ctx.set("Access-Control-Allow-Methods", "OPTIONS, GET, POST");
  ctx.set("Access-Control-Allow-Headers", "Content-Type, Authorization");
  ctx.set("Access-Control-Expose-Headers", "Location");
  ctx.set("Access-Control-Max-Age", "7200");
}

/** A key as `Authorization: Bearer ID/SECRET`, or `?key=ID/SECRET`. */
export function presentedKey(ctx: Context, params: Record<string, string | undefined>): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get("authorization"));
  return match?.[1] ?? params["key"];
}

/** Query parameters, with those of a POSTed form or JSON object over them. */
export async function readParams(ctx: Context): Promise<Record<string, string | undefined>> {
  const params: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(ctx.query)) params[name] = typeof value === "string" ? value : undefined;
  if (ctx.method === "POST" && (ctx.request.length || ctx.get("transfer-encoding"))) {
    Object.assign(params, ctx.is("application/json") ? await readJsonParams(ctx) : await readForm(ctx));
  }
  return params;
}

/** A JSON client writes `"uses": 2`; a number dropped as "not a string" would silently make a one-use invite. */
async function readJsonParams(ctx: Context): Promise<Record<string, string>> {
  const value = parseJson(decodeUtf8(await readBody(ctx)));
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new AppError("MALFORMED_REQUEST", "body must be a JSON object");
  const params: Record<string, string> = {};
  for (const [name, field] of Object.entries(value as Record<string, unknown>)) {
    if (typeof field === "string" || typeof field === "number" || typeof field === "boolean") params[name] = String(field);
    else if (field !== null) throw new AppError("MALFORMED_REQUEST", `${name} must be a string or a number`);
  }
  return params;
}

export function parseCount(value: string | undefined, name: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new AppError("MALFORMED_REQUEST", `${name} must be a whole number`);
  return Number(value);
}

/** mod_invites_api: GET or POST {apiPath} with a key creates an invite (201, or 303 with redirect=true). */
export function invitesApiRouter(deps: InviteDeps & Pick<AppContext, "metrics">): Router {
  const router = new Router();
  router.options(deps.config.invites.apiPath, (ctx) => {
    setCors(ctx);
    ctx.status = 204;
  });
  router.all(deps.config.invites.apiPath, async (ctx, next) => {
    setCors(ctx);
    await next();
  });
  const create = async (ctx: Context) => {
    const params = await readParams(ctx);
    const key = await authenticateApiKey(deps, presentedKey(ctx, params));
    if (!key) throw new AppError("API_KEY_INVALID", "a valid API key is required");
    const created = await createInvite(deps, { kind: "key", id: key.id, name: key.name || key.id }, {
      uses: parseCount(params["uses"], "uses"),
      ttlSeconds: parseCount(params["ttl"], "ttl"),
      username: params["username"],
    });
    deps.metrics.countInvite(deps.metrics.invitesCreated, created.invite);
    ctx.set("Location", created.url);
    ctx.set("Cache-Control", "no-store");
    if (params["redirect"] === "true") {
      ctx.status = 303;
      ctx.type = "text/plain; charset=utf-8";
      ctx.body = `See Other: ${created.url}`;
      return;
    }
    ctx.status = 201;
    ctx.body = {
      id: created.token,
      url: created.url,
      handle: created.invite.handle,
      uses: created.invite.usesTotal,
      username: created.invite.username,
      issued_at: new Date(created.invite.createdAt).toISOString(),
      expires_at: new Date(created.invite.expiresAt).toISOString(),
    };
  };
  router.get(deps.config.invites.apiPath, create);
  router.post(deps.config.invites.apiPath, create);
  return router;
}
