import type { IncomingMessage } from "node:http";
import accepts from "accepts";
import type { Context } from "koa";
import type { AppError } from "../errors.ts";
import { matchLanguage } from "../languages.ts";
import type { PageModels, PageName, ShownError, Templates } from "../templates.ts";

// Pages carry tokens in their URLs: never leak them in Referer, never let them be framed or scripted.
// The only outside origin a page may load from is the operator's logo (site.logoUrl). A page with
// the proof-of-work widget (DESIGN §11) also runs the widget's script, stylesheet and worker, all from
// gatehouse itself, and fetches its challenge there; the SHA worker needs no WebAssembly, blob: or eval.
function pageCsp(logoOrigin: string | null, widget: boolean): string {
  const img = logoOrigin ? `img-src 'self' data: ${logoOrigin}` : "img-src 'self' data:";
  const parts = widget
    ? ["default-src 'none'", "script-src 'self'", "worker-src 'self'", "connect-src 'self'", "style-src 'self' 'unsafe-inline'"]
    : ["default-src 'none'", "style-src 'unsafe-inline'"];
  return `${parts.join("; ")}; ${img}; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`;
}

export function wantsJson(ctx: Context): boolean {
  return prefersJson(ctx.req);
}

/** wantsJson on Node's own request, for the registration's front door (src/http/front-door.ts). */
export function prefersJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? "";
  // Most API clients send no Accept header or */*; both prefer the first type offered, html.
  if (accept === "" || accept === "*/*") return false;
  return accepts(req).types("html", "json") === "json";
}

/** Whether the client is a browser asking for a page: it names text/html in Accept (API clients do not). */
export function wantsHtml(ctx: Context): boolean {
  return /\btext\/html\b/i.test(ctx.get("accept")) && ctx.accepts("html", "json") === "html";
}

/** The language `?lang=` asks for, when it is one offered. */
function askedLanguage(ctx: Context, offered: readonly string[]): string | undefined {
  const asked = ctx.query["lang"];
  return typeof asked === "string" ? matchLanguage(asked, offered) : undefined;
}

/** The page's language: `?lang=` when offered, else the best match of Accept-Language, else the default (DESIGN §10). */
export function pageLanguage(ctx: Context, offered: readonly string[]): string {
  const asked = askedLanguage(ctx, offered);
  if (asked) return asked;
  if (ctx.get("accept-language")) {
    const accepted = ctx.acceptsLanguages([...offered]);
    if (typeof accepted === "string") return accepted;
    // Negotiator matches de-AT to de, but not de to de-CH; matchLanguage does both.
    for (const tag of ctx.get("accept-language").split(",")) {
      const match = matchLanguage(tag.split(";")[0] ?? "", offered);
      if (match) return match;
    }
  }
  return offered[0]!;
}

/**
 * `path` carrying the page's `?lang=` when the person chose one, so a form posted from the page
 * answers in the same language (without a choice, Accept-Language does that on its own).
 */
export function keepLanguage(ctx: Context, offered: readonly string[], path: string): string {
  const asked = askedLanguage(ctx, offered);
  return asked ? `${path}${path.includes("?") ? "&" : "?"}lang=${encodeURIComponent(asked)}` : path;
}

/**
 * This page in another language: a query-only link (`?lang=de`, with a Prosody-style bare token
 * kept), which stays on this path; a link naming the path would let `//host` paths point away.
 */
function switchHref(ctx: Context): (code: string) => string {
  const kept = ctx.method === "GET" ? ctx.querystring.split("&").filter((part) => part !== "" && !part.startsWith("lang=")) : [];
  return (code) => `?${[...kept, `lang=${encodeURIComponent(code)}`].join("&")}`;
}

export function sendPage<N extends PageName>(ctx: Context, templates: Templates, name: N, model: PageModels[N], status = 200): void {
  const lang = pageLanguage(ctx, templates.languages);
  ctx.status = status;
  ctx.type = "text/html; charset=utf-8";
  const widget = typeof model === "object" && model !== null && "pow" in model && model.pow !== undefined;
  ctx.set("Content-Security-Policy", pageCsp(templates.logoOrigin, widget));
  ctx.set("Content-Language", lang);
  ctx.set("Cache-Control", "no-store");
  ctx.vary("Accept-Language");
  ctx.body = templates.page(name, model, lang, switchHref(ctx));
}

/** A refusal as a page shows it: the code picks the words in the page's language. */
export function shownError(err: AppError): ShownError {
  return { code: err.code, message: err.message, detail: err.options.detail, values: err.options.values };
}
