import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import Router from "@koa/router";
import type { Context } from "koa";
import { PACKAGE_ROOT } from "../config.ts";
import type { AppContext } from "../context.ts";
import { AppError } from "../errors.ts";
import type { PowWidget } from "../templates.ts";
import { pageLanguage } from "./respond.ts";
import { guardForm, issueChallenge, notePowTrigger, powRequired, PowRefused, type AntibotDeps } from "../domain/antibot.ts";

export type AntibotRouteDeps = AntibotDeps & Pick<AppContext, "metrics" | "templates">;

/** The public forms that may ask for a proof of work, as metrics name them. */
export type GuardedForm = "invite" | "verify" | "resend";


export const POW_CHALLENGE_PATH = "/_gatehouse/pow/challenge";

interface Asset {
  body: Buffer;
  type: string;
}

// The ALTCHA widget is served from gatehouse itself, out of node_modules: no third party sees the
// people who sign up. "external" is the build without inline workers and styles, for a strict CSP.
function loadAssets(): { version: string; files: Map<string, Asset> } {
  const altcha = join(dirname(createRequire(import.meta.url).resolve("altcha/external")), "..");
  const files = new Map<string, Asset>([
    ["altcha.js", { body: readFileSync(join(altcha, "external", "altcha.min.js")), type: "text/javascript; charset=utf-8" }],
    ["altcha.css", { body: readFileSync(join(altcha, "external", "altcha.css")), type: "text/css; charset=utf-8" }],
    ["sha-worker.js", { body: readFileSync(join(altcha, "workers", "sha.js")), type: "text/javascript; charset=utf-8" }],
    ["pow.js", { body: readFileSync(join(PACKAGE_ROOT, "static", "pow.js")), type: "text/javascript; charset=utf-8" }],
  ]);
  // The widget's own words in each language it ships (it falls back to English without them).
  for (const file of readdirSync(join(altcha, "i18n"))) {
    if (/^[a-z]{2,3}(-[a-z0-9]+)?\.js$/.test(file)) files.set(`i18n-${file}`, { body: readFileSync(join(altcha, "i18n", file)), type: "text/javascript; charset=utf-8" });
  }
  // One version for the set, in the path: the files can be cached for a year and an upgrade still reaches browsers.
  const hash = createHash("sha256");
  for (const [name, asset] of files) hash.update(name).update(asset.body);
  return { version: hash.digest("hex").slice(0, 12), files };
}

const ASSETS = loadAssets();
const STATIC_BASE = `/_gatehouse/static/${ASSETS.version}/`;

export const POW_WIDGET: PowWidget = {
  challengeUrl: POW_CHALLENGE_PATH,
  script: `${STATIC_BASE}altcha.js`,
  setup: `${STATIC_BASE}pow.js`,
  css: `${STATIC_BASE}altcha.css`,
};

/** The widget's translation for a page language: `de.js`, else `fr-fr.js` for `fr`; none for English (built in). */
function widgetWords(lang: string): string | undefined {
  const code = lang.toLowerCase();
  const base = code.split("-")[0]!;
  if (base === "en") return undefined;
  const file = [code, `${base}-${base}`, base].map((name) => `i18n-${name}.js`).find((name) => ASSETS.files.has(name));
  return file && `${STATIC_BASE}${file}`;
}

/** The widget for a page shown to this request, when its forms ask for a proof of work now. */
export async function powWidgetFor(ctx: Context, deps: AntibotDeps & Pick<AppContext, "templates">): Promise<PowWidget | undefined> {
  if (!(await powRequired(deps, ctx.ip))) return undefined;
  const words = widgetWords(pageLanguage(ctx, deps.templates.languages));
  return words ? { ...POW_WIDGET, words } : POW_WIDGET;
}

/**
 * The antibot check of a public form's submission (domain guardForm), counted in the metrics.
 * Resolves the widget to show should the form come back; throws PowRefused.
 */
export async function guardSubmission(ctx: Context, deps: AntibotRouteDeps, form: GuardedForm, payload: string | undefined): Promise<void> {
  try {
    const outcome = await guardForm(deps, ctx.ip, payload);
    if (outcome === "solved") deps.metrics.proofsOfWork.inc({ form, outcome: "solved" });
  } catch (err) {
    if (err instanceof PowRefused) {
      deps.metrics.proofsOfWork.inc({ form, outcome: err.reason });
      // The form comes back with the reason rather than through the error middleware: logged here.
      deps.log.info({ event: "pow-refused", form, reason: err.reason, ip: ctx.ip }, "proof of work refused");
    }
    throw err;
  }
}

/** A rate limit of a public form tripped for this request's address: "auto" turns the proof of work on for it. */
export function notePowTriggerFor(ctx: Context, deps: AntibotDeps): Promise<void> {
  return notePowTrigger(deps, ctx.ip);
}

/** The challenge the widget fetches, and the widget's files. */
export function antibotRouter(deps: AntibotDeps): Router {
  const router = new Router();
  router.get(POW_CHALLENGE_PATH, async (ctx) => {
    ctx.set("Cache-Control", "no-store");
    ctx.body = await issueChallenge(deps);
  });
  router.get("/_gatehouse/static/:version/:name", (ctx) => {
    const asset = ctx.params["version"] === ASSETS.version ? ASSETS.files.get(ctx.params["name"] ?? "") : undefined;
    if (!asset) throw new AppError("NOT_FOUND", "not found");
    ctx.set("Cache-Control", "public, max-age=31536000, immutable");
    ctx.type = asset.type;
    ctx.body = asset.body;
  });
  return router;
}
