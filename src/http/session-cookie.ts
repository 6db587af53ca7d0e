import type { Context } from "koa";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import { SESSION_TTL_MS, type Session } from "../domain/sessions.ts";

export const SESSION_COOKIE = "identity";

/** Secure whenever the public address is HTTPS, even when TLS ends at a proxy that is not trusted for headers. */
function isHttps(ctx: Context, config: AppContext["config"]): boolean {
  return config.publicUrl.startsWith("https:") || ctx.secure;
}

export function setSessionCookie(ctx: Context, config: AppContext["config"], session: Session): void {
  const secure = isHttps(ctx, config);
  ctx.cookies.secure = secure;
  ctx.cookies.set(SESSION_COOKIE, session.token, {
    httpOnly: true,
    sameSite: "strict",
    secure,
    path: "/",
    maxAge: SESSION_TTL_MS,
    overwrite: true,
  });
}

export function clearSessionCookie(ctx: Context, config: AppContext["config"]): void {
  const secure = isHttps(ctx, config);
  ctx.cookies.secure = secure;
  ctx.cookies.set(SESSION_COOKIE, "", { httpOnly: true, sameSite: "strict", secure, path: "/", maxAge: 0, overwrite: true });
}

export function readSessionCookie(ctx: Context): string | undefined {
  return ctx.cookies.get(SESSION_COOKIE) || undefined;
}

/**
 * A state-changing request that a cookie authorizes must come from our own pages. SameSite=Strict
 * already keeps the cookie off cross-site requests; this is the second lock for older browsers.
 */
export function refuseCrossSite(ctx: Context, config: AppContext["config"]): void {
  const site = ctx.get("sec-fetch-site");
  if (site === "cross-site") throw new AppError("CROSS_SITE_REQUEST", "cross-site requests are not accepted here");
  // Our pages send Referrer-Policy: no-referrer, under which browsers post our own forms with
  // `Origin: null`; a browser that says the request is same-origin is believed over that.
  if (site === "same-origin") return;
  const origin = ctx.get("origin");
  if (!origin) return;
  const allowed = new Set([new URL(config.publicUrl).origin, `${ctx.protocol}://${ctx.host}`]);
  if (!allowed.has(origin)) throw new AppError("CROSS_SITE_REQUEST", "cross-site requests are not accepted here");
}
