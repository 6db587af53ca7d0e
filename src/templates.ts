/**
 * Pages and mails: Handlebars templates and i18next message catalogues (DESIGN §10).
 *
 * Conventions (other branches add strings by them; keep them stable):
 * - Files live under `templates/`: `pages/<name>.hbs` (a leading `_` makes a partial, e.g.
 *   `_layout.hbs` used as `{{#> layout title=…}}`), `mail/<kind>.subject.txt`, `mail/<kind>.txt`,
 *   `mail/<kind>.html` (every mail kind is the set of `*.subject.txt` found; all three parts are
 *   required; `mail/_frame.html` is the HTML parts' shared frame, `{{#> mail-frame title=…}}`),
 *   and `locales/<language>.json`, one catalogue per language.
 * - `templates.dir` overrides any of these files under the same relative name; a file it lacks
 *   comes from the built-in folder. A catalogue there is merged over the built-in one of the same
 *   language key by key (so an operator can reword one string), or adds a language.
 * - Strings a person reads are catalogue keys: `{{t "pages.invite.title"}}`, with values as
 *   `{{t "pages.invite.heading" site=site.name}}` and `{{site}}` in the catalogue string.
 *   Catalogue strings are plain text, never HTML: `{{t}}` output is escaped like any `{{value}}`
 *   in HTML templates (and left as it is in the mails' text parts).
 * - Keys are grouped: `layout.*` (the frame of every page), `pages.<page>.*`, `mail.<kind>.*`,
 *   `errors.<CODE>` (a refusal's reason as a person reads it, CODE from src/errors.ts) and
 *   `status.<http status>` (an error page's title). `{{errorText error}}` shows an `{code, message}`
 *   by its `errors.<code>` key, falling back to the message.
 * - `{{date value}}` writes a time (epoch ms or a date string) in the page's or mail's language;
 *   `{{linkText url}}` a link as a person reads it (`mailto:` dropped).
 * - en.json is complete by definition; test/templates.test.ts fails when another catalogue lacks a
 *   key of en.json or a template names a key en.json lacks. Load also refuses a template that
 *   names a literal key en.json lacks, so an operator's typo is caught at start-up or reload.
 * - Every page gets `site` (name, logoUrl, accentColor, homeUrl, signInUrl, supportUrl, nextUrl),
 *   `lang`, and `languages` (for the switcher); every mail gets `site` and `lang`.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import Handlebars from "handlebars";
import i18next, { type i18n as I18n } from "i18next";
import { PACKAGE_ROOT, type Config } from "./config.ts";
import type { MailModels, MailName } from "./domain/outbox-items.ts";
import { matchLanguage, offeredLanguage } from "./languages.ts";

export { matchLanguage };

export const TEMPLATE_DIR = join(PACKAGE_ROOT, "templates");

/** The language every catalogue is checked against and that fills gaps in an operator's catalogue. */
export const BASE_LANGUAGE = "en";

/** A refusal shown on a page: its code picks the translated reason, its message is the fallback. */
export interface ShownError {
  code: string;
  message: string;
  /** The variant: `errors.CODE_detail` is tried before `errors.CODE`. */
  detail?: string;
  /** Values the catalogue string may use, e.g. `count` for PASSWORD_TOO_SHORT. */
  values?: Record<string, string | number>;
}

/** What each page template is given (besides site, lang and languages). Handlebars escapes every {{value}}; templates must not use {{{ }}}. */
/** Where the proof-of-work widget's parts are, on a page whose form asks for one (DESIGN §11). */
export interface PowWidget {
  challengeUrl: string;
  script: string;
  setup: string;
  css: string;
  /** The widget's own words in the page's language, when it ships them. */
  words?: string;
}

/** A form that may ask for a proof of work: the widget, and why the last one was refused. */
interface PowFields {
  pow?: PowWidget;
  powError?: ShownError;
}

export interface PageModels {
  "verify-form": { action: string; resendAction?: string; error?: ShownError; code?: string } & PowFields;
  /** The "send the mail again" form; `errorField` names the input an error is about. */
  "verify-resend": { action: string; username: string; mail: string; error?: ShownError; errorField?: "username" | "mail" } & PowFields;
  /** The one answer to a resend, whether or not such a registration exists. */
  "verify-resent": { action: string };
  "verify-confirm": { action: string; username: string; expiresAt: number };
  /** shortly: an account server has not made the account yet (DESIGN §9); it will be ready shortly. */
  "verify-success": { username: string; alreadyActive: boolean; shortly?: boolean; awaitingApproval?: boolean };
  "verify-failure": { action: string; resendAction?: string };
  error: { status: number; error: ShownError };
  invite: {
    action: string;
    issuerName: string;
    boundUsername?: string;
    username: string;
    error?: ShownError;
    /** Which field the error is about: "username", "password", or none. */
    errorField?: "username" | "password";
    minPasswordLength: number;
    expiresAt: number;
    /** A moderator will decide (invites.requireApproval): the form asks why the person joins. */
    askReason?: boolean;
    reason?: string;
    maxReasonLength?: number;
  } & PowFields;
  "invite-success": { username: string; shortly?: boolean; awaitingApproval?: boolean };
  /** `/` for a browser: what this place is, and the way to the verify form. */
  home: { verifyPath: string };
  /** A moderator's link (DESIGN §11): the waiting registration and one button; the reason is the person's own text. */
  "approval-confirm": {
    action: string;
    /** true: the approve link's page; false: the reject link's, which also asks for a reason. */
    approve: boolean;
    username: string;
    reason: string | null;
    invitedBy: string | null;
    createdAt: number;
    expiresAt: number;
    maxReasonLength: number;
  };
  "approval-done": { username: string; approve: boolean };
}

export type PageName = keyof PageModels;

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/** The branding every page and mail shows, from `site.*` (DESIGN §10). */
export interface SiteView {
  name: string;
  logoUrl?: string;
  accentColor: string;
  homeUrl?: string;
  signInUrl?: string;
  supportUrl?: string;
  /** Where a success page sends a person: signInUrl, else homeUrl. */
  nextUrl?: string;
}

export interface LanguageLink {
  code: string;
  /** The language's own name for itself ("Deutsch"). */
  name: string;
  current: boolean;
}

export function siteView(config: Pick<Config, "site" | "publicUrl">): SiteView {
  const { site } = config;
  return {
    name: site.name ?? new URL(config.publicUrl).host,
    logoUrl: site.logoUrl,
    accentColor: site.accentColor,
    homeUrl: site.homeUrl,
    signInUrl: site.signInUrl,
    supportUrl: site.supportUrl,
    nextUrl: site.signInUrl ?? site.homeUrl,
  };
}

// Building an Intl formatter costs about as much as rendering a whole page: one per language, kept.
const dateFormats = new Map<string, Intl.DateTimeFormat>();
const languageNames = new Map<string, string>();
// Times are shown to the minute, and formatting one costs ~10 µs: those met lately are kept, at most 1000.
const MINUTE_MS = 60_000;
const formattedMinutes = new Map<string, string>();

/** Formats a time in words a person reads, in UTC with the zone named (pages cannot know the reader's zone). */
export function formatDate(value: unknown, lang: string): string {
  const ms = typeof value === "number" ? value : typeof value === "string" ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) return String(value ?? "");
  let format = dateFormats.get(lang);
  if (!format) {
    format = new Intl.DateTimeFormat(lang, {
      year: "numeric", month: "long", day: "numeric", hour: "numeric", minute: "2-digit", timeZone: "UTC", timeZoneName: "short",
    });
    dateFormats.set(lang, format);
  }
  const minute = Math.floor(ms / MINUTE_MS);
  const key = `${lang} ${minute}`;
  let text = formattedMinutes.get(key);
  if (text === undefined) {
    // The format has no seconds: the minute's first millisecond reads the same as any other of it.
    text = format.format(minute * MINUTE_MS);
    if (formattedMinutes.size >= 1000) formattedMinutes.clear();
    formattedMinutes.set(key, text);
  }
  return text;
}

function languageName(code: string): string {
  let name = languageNames.get(code);
  if (name === undefined) {
    try {
      name = new Intl.DisplayNames([code], { type: "language" }).of(code) ?? code;
    } catch {
      name = code;
    }
    languageNames.set(code, name);
  }
  return name;
}

/** How many strings with values the `t` helper keeps (see Templates). */
const WITH_VALUES_KEPT = 1000;

/** A template or catalogue that cannot be used: refused at load like a bad config. */
export class TemplateError extends Error {
  constructor(file: string, reason: string) {
    super(`template ${file}: ${reason}`);
    this.name = "TemplateError";
  }
}

type Catalogue = { [key: string]: string | Catalogue };

/** "a.b.c" for every string in a catalogue. */
export function catalogueKeys(catalogue: Catalogue, prefix = ""): string[] {
  return Object.entries(catalogue).flatMap(([key, value]) =>
    typeof value === "string" ? [`${prefix}${key}`] : catalogueKeys(value, `${prefix}${key}.`));
}

function mergeCatalogues(base: Catalogue, over: Catalogue): Catalogue {
  const out: Catalogue = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const below = out[key];
    out[key] = typeof value === "object" && typeof below === "object" ? mergeCatalogues(below, value) : value;
  }
  return out;
}

function checkCatalogue(value: unknown, file: string, path = ""): Catalogue {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TemplateError(file, `${path || "the file"} is not an object of strings`);
  for (const [key, child] of Object.entries(value)) {
    if (typeof child !== "string") checkCatalogue(child, file, `${path}${key}.`);
  }
  return value as Catalogue;
}

/** The literal keys a template passes to `t` (dynamic keys cannot be checked). */
export function keysUsed(source: string): string[] {
  const keys: string[] = [];
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      node.forEach(visit);
      return;
    }
    if (typeof node !== "object" || node === null) return;
    const n = node as { type?: string; path?: { original?: string }; params?: { type: string; value?: unknown }[] };
    if ((n.type === "MustacheStatement" || n.type === "SubExpression") && n.path?.original === "t") {
      const first = n.params?.[0];
      if (first?.type === "StringLiteral" && typeof first.value === "string") keys.push(first.value);
    }
    for (const [key, child] of Object.entries(node)) if (key !== "loc") visit(child);
  };
  visit(Handlebars.parse(source));
  return keys;
}

/** Relative file names under one subfolder of the built-in and the operator's template folders. */
function filesIn(dirs: string[], sub: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const dir of dirs) {
    const folder = join(dir, sub);
    if (!existsSync(folder)) continue;
    for (const file of readdirSync(folder)) {
      const path = join(folder, file);
      if (statSync(path).isFile()) found.set(file, path);
    }
  }
  return found;
}

interface MailTemplates {
  subject: Handlebars.TemplateDelegate;
  text: Handlebars.TemplateDelegate;
  html: Handlebars.TemplateDelegate;
}

/**
 * Templates and catalogues are read once per load (start-up and config reload), so an operator's
 * replacement takes effect on SIGHUP without a restart. The constructor throws a TemplateError for
 * anything that would fail later, so a bad file is refused before anything is replaced.
 */
export class Templates {
  readonly #pages = new Map<string, Handlebars.TemplateDelegate>();
  readonly #mail = new Map<string, MailTemplates>();
  readonly #i18n: I18n;
  readonly #site: SiteView;
  /** The languages offered (config `languages`), the first the default. */
  readonly languages: readonly string[];
  /** The logo's origin, for the pages' Content-Security-Policy; null without a logo. */
  readonly logoOrigin: string | null;

  constructor(config: Pick<Config, "site" | "publicUrl" | "templates" | "languages">, builtIn = TEMPLATE_DIR) {
    const dirs = [builtIn, ...(config.templates.dir ? [resolve(config.templates.dir)] : [])];
    if (config.templates.dir && !existsSync(dirs[1]!)) throw new TemplateError(config.templates.dir, "templates.dir does not exist");
    this.languages = config.languages;
    this.#site = siteView(config);
    this.logoOrigin = config.site.logoUrl ? new URL(config.site.logoUrl).origin : null;

    const catalogues = new Map<string, Catalogue>();
    for (const dir of dirs) {
      const folder = join(dir, "locales");
      if (!existsSync(folder)) continue;
      for (const file of readdirSync(folder)) {
        if (!file.endsWith(".json")) continue;
        const name = `locales/${file}`;
        let parsed: unknown;
        try {
          parsed = JSON.parse(readFileSync(join(folder, file), "utf8"));
        } catch (err) {
          throw new TemplateError(join(folder, file), `is not JSON: ${(err as Error).message}`);
        }
        const lang = file.slice(0, -5);
        const catalogue = checkCatalogue(parsed, name);
        catalogues.set(lang, mergeCatalogues(catalogues.get(lang) ?? {}, catalogue));
      }
    }
    const base = catalogues.get(BASE_LANGUAGE);
    if (!base) throw new TemplateError(`locales/${BASE_LANGUAGE}.json`, "is missing");
    for (const lang of config.languages) {
      if (!catalogues.has(lang)) throw new TemplateError(`locales/${lang}.json`, `is missing, but languages offers ${lang}`);
    }
    const known = new Set(catalogueKeys(base));
    this.#i18n = i18next.createInstance();
    void this.#i18n.init({
      resources: Object.fromEntries([...catalogues].map(([lang, catalogue]) => [lang, { translation: catalogue }])),
      lng: config.languages[0],
      fallbackLng: BASE_LANGUAGE,
      // Catalogues are named exactly by the tags in `languages`; no loading of "de" for "de-CH".
      load: "currentOnly",
      initAsync: false,
      // Handlebars escapes the whole result in HTML templates; escaping here too would double it.
      interpolation: { escapeValue: false },
      returnNull: false,
      showSupportNotice: false,
    } as Parameters<I18n["init"]>[0]);

    const hb = Handlebars.create();
    const i18n = this.#i18n;
    // A string without values is the same every time: looked up once per language (an i18next
    // lookup costs about as much as the rest of the page).
    const plain = new Map<string, string>();
    // With values it is the same for the same values: kept for those met lately (the site's name, a
    // time to the minute), at most WITH_VALUES_KEPT of them, so a stream of usernames cannot grow it.
    const withValues = new Map<string, string>();
    hb.registerHelper("t", function (key: unknown, options: Handlebars.HelperOptions) {
      const lng: string = options.data?.lang ?? config.languages[0];
      const values = Object.entries(options.hash as Record<string, unknown>);
      if (values.length > 0) {
        if (!values.every(([, value]) => typeof value === "string" || typeof value === "number")) return i18n.t(String(key), { ...options.hash, lng });
        const cacheKey = JSON.stringify([lng, String(key), values]);
        let text = withValues.get(cacheKey);
        if (text === undefined) {
          text = i18n.t(String(key), { ...options.hash, lng });
          if (withValues.size >= WITH_VALUES_KEPT) withValues.clear();
          withValues.set(cacheKey, text);
        }
        return text;
      }
      const cacheKey = `${lng}\u0000${String(key)}`;
      let text = plain.get(cacheKey);
      if (text === undefined) {
        text = i18n.t(String(key), { lng });
        plain.set(cacheKey, text);
      }
      return text;
    });
    hb.registerHelper("errorText", function (error: ShownError | undefined, options: Handlebars.HelperOptions) {
      if (!error) return "";
      const keys = [...(error.detail ? [`errors.${error.code}_${error.detail}`] : []), `errors.${error.code}`];
      return i18n.t(keys, { ...error.values, ...options.hash, lng: options.data?.lang ?? config.languages[0], defaultValue: error.message });
    });
    hb.registerHelper("concat", (...args: unknown[]) => args.slice(0, -1).map(String).join(""));
    hb.registerHelper("date", function (value: unknown, options: Handlebars.HelperOptions) {
      return formatDate(value, options.data?.lang ?? config.languages[0]);
    });
    hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
    // A link as a person reads it: a mail address without its scheme.
    hb.registerHelper("linkText", (url: unknown) => String(url ?? "").replace(/^mailto:/i, ""));

    const compile = (path: string, options: CompileOptions = {}): Handlebars.TemplateDelegate => {
      const source = readFileSync(path, "utf8");
      let keys: string[];
      try {
        keys = keysUsed(source);
      } catch (err) {
        throw new TemplateError(path, `does not compile: ${(err as Error).message}`);
      }
      const unknown = keys.filter((key) => !known.has(key));
      if (unknown.length > 0) throw new TemplateError(path, `uses ${unknown.join(", ")}, which locales/${BASE_LANGUAGE}.json lacks`);
      return hb.compile(source, { strict: false, ...options });
    };

    for (const [file, path] of filesIn(dirs, "pages")) {
      if (!file.endsWith(".hbs")) continue;
      const name = file.slice(0, -4);
      if (name.startsWith("_")) hb.registerPartial(name.slice(1), compile(path));
      else this.#pages.set(name, compile(path));
    }
    const mailFiles = filesIn(dirs, "mail");
    // `mail/_frame.html` is every HTML mail's head, header and footer: `{{#> mail-frame title=…}}`.
    for (const [file, path] of mailFiles) {
      if (file.startsWith("_") && file.endsWith(".html")) hb.registerPartial(`mail-${file.slice(1, -5)}`, compile(path));
    }
    for (const file of mailFiles.keys()) {
      if (!file.endsWith(".subject.txt")) continue;
      const kind = file.slice(0, -".subject.txt".length);
      const part = (suffix: string, options: CompileOptions = {}) => {
        const path = mailFiles.get(`${kind}.${suffix}`);
        if (!path) throw new TemplateError(`mail/${kind}.${suffix}`, `is missing (mail/${kind}.subject.txt needs it)`);
        return compile(path, options);
      };
      // Plain-text parts are not HTML: escaping them would mangle "&" in links.
      this.#mail.set(kind, { subject: part("subject.txt", { noEscape: true }), text: part("txt", { noEscape: true }), html: part("html") });
    }

    // Handlebars compiles a template on its first use; a first render here moves that (and its errors) to load.
    const first = (file: string, template: Handlebars.TemplateDelegate) => {
      try {
        template({ site: this.#site }, { data: { lang: config.languages[0] } });
      } catch (err) {
        throw new TemplateError(file, `does not compile: ${(err as Error).message}`);
      }
    };
    for (const [name, template] of this.#pages) first(`pages/${name}.hbs`, template);
    for (const [kind, parts] of this.#mail) for (const [part, template] of Object.entries(parts)) first(`mail/${kind} (${part})`, template);
  }

  /** The mail kinds found (`mail/<kind>.subject.txt`). */
  get mailKinds(): string[] {
    return [...this.#mail.keys()];
  }

  /** The page names found (`pages/<name>.hbs`). */
  get pageNames(): string[] {
    return [...this.#pages.keys()];
  }

  /** `lang` if offered, else the default language. */
  language(lang: string | undefined): string {
    return offeredLanguage(lang, this.languages);
  }

  /** One catalogue string, for what is not a template (e.g. a plain-text answer). */
  text(lang: string, key: string, values: Record<string, unknown> = {}): string {
    return this.#i18n.t(key, { ...values, lng: this.language(lang) });
  }

  /**
   * A page in `lang`; `switchHref` makes the language switcher's link for a language (none: no switcher).
   */
  page<N extends PageName>(name: N, model: PageModels[N], lang?: string, switchHref?: (code: string) => string): string {
    const template = this.#pages.get(name);
    if (!template) throw new Error(`missing page template ${name}.hbs`);
    const language = this.language(lang);
    const languages: (LanguageLink & { href: string })[] = switchHref && this.languages.length > 1
      ? this.languages.map((code) => ({ code, name: languageName(code), current: code === language, href: switchHref(code) }))
      : [];
    return template({ ...model, site: this.#site, lang: language, languages }, { data: { lang: language } });
  }

  mail<N extends MailName>(name: N, model: MailModels[N], lang?: string): RenderedMail {
    const template = this.#mail.get(name);
    if (!template) throw new Error(`missing mail template ${name}`);
    const language = this.language(lang);
    const data = { data: { lang: language } };
    const view = { ...model, site: this.#site, lang: language };
    return { subject: template.subject(view, data).replace(/[\r\n]+/g, " ").trim(), text: template.text(view, data), html: template.html(view, data) };
  }
}

type CompileOptions = Parameters<typeof Handlebars.compile>[1];
