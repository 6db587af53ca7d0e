import type { Context } from "koa";
import type { PageModels, PageName, Templates } from "../templates.ts";

// Pages carry tokens in their URLs: never leak them in Referer, never let them be framed or scripted.
const PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
// A page with the proof-of-work widget: its script, stylesheet and worker come from gatehouse itself
// and it fetches its challenge there. The SHA worker needs no WebAssembly, blob: or eval.
const POW_PAGE_CSP =
  "default-src 'none'; script-src 'self'; worker-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

export function wantsJson(ctx: Context): boolean {
  const accept = ctx.get("accept");
  // Most API clients send no Accept header or */*; both prefer the first type offered, html.
  if (accept === "" || accept === "*/*") return false;
  return ctx.accepts("html", "json") === "json";
}

export function sendPage<N extends PageName>(ctx: Context, templates: Templates, name: N, model: PageModels[N], status = 200): void {
  ctx.status = status;
  ctx.type = "text/html; charset=utf-8";
  const withWidget = typeof model === "object" && model !== null && "pow" in model && model.pow !== undefined;
  ctx.set("Content-Security-Policy", withWidget ? POW_PAGE_CSP : PAGE_CSP);
  ctx.set("Cache-Control", "no-store");
  ctx.body = templates.page(name, model);
}
