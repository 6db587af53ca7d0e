import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Handlebars from "handlebars";
import { PACKAGE_ROOT } from "./config.ts";
import type { MailModels, MailName } from "./domain/outbox-items.ts";

export const TEMPLATE_DIR = join(PACKAGE_ROOT, "templates");

/** Where the proof-of-work widget's parts are, on a page whose form asks for one (DESIGN §11). */
export interface PowWidget {
  challengeUrl: string;
  script: string;
  setup: string;
  css: string;
}

/** A form that may ask for a proof of work: the widget, and the reason the last one was refused. */
interface PowFields {
  pow?: PowWidget;
  powError?: string;
}

/** What each page template is given. Handlebars escapes every {{value}}; templates must not use {{{ }}}. */
export interface PageModels {
  "verify-form": { action: string; resendAction: string; error?: string } & PowFields;
  /** The "send the mail again" form; `field` names the input an error is about. */
  "verify-resend": { action: string; username: string; mail: string; error?: string; field?: "username" | "mail" } & PowFields;
  /** The one answer to a resend, whether or not such a registration exists. */
  "verify-resent": { action: string };
  "verify-confirm": { action: string; username: string; expiresAt: string };
  /** shortly: an account server has not made the account yet (DESIGN §9); it will be ready shortly. */
  "verify-success": { username: string; alreadyActive: boolean; shortly?: boolean };
  "verify-failure": { action: string; resendAction: string };
  error: { status: number; title: string; message: string };
  invite: {
    action: string;
    issuerName: string;
    siteName: string;
    siteUrl: string;
    boundUsername?: string;
    username: string;
    error?: string;
    minPasswordLength: number;
    expiresAt: string;
  } & PowFields;
  "invite-success": { username: string; siteName: string; siteUrl: string; shortly?: boolean };
}

export type PageName = keyof PageModels;

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

/**
 * Templates are read from disk once per load (start-up and config reload), so an operator's
 * replacement takes effect on SIGHUP without a restart.
 */
export class Templates {
  readonly #pages = new Map<string, Handlebars.TemplateDelegate>();
  readonly #mail = new Map<string, { subject: Handlebars.TemplateDelegate; text: Handlebars.TemplateDelegate; html: Handlebars.TemplateDelegate }>();

  constructor(dir = TEMPLATE_DIR) {
    const hb = Handlebars.create();
    hb.registerHelper("eq", (a: unknown, b: unknown) => a === b);
    const pageDir = join(dir, "pages");
    for (const file of readdirSync(pageDir)) {
      if (!file.endsWith(".hbs")) continue;
      const source = readFileSync(join(pageDir, file), "utf8");
      const name = file.slice(0, -4);
      if (name.startsWith("_")) hb.registerPartial(name.slice(1), source);
      else this.#pages.set(name, hb.compile(source, { strict: false }));
    }
    const mailDir = join(dir, "mail");
    for (const name of ["verify"] satisfies MailName[]) {
      const read = (suffix: string) => readFileSync(join(mailDir, `${name}.${suffix}`), "utf8");
      this.#mail.set(name, {
        // Plain-text parts are not HTML: escaping them would mangle "&" in links.
        subject: hb.compile(read("subject.txt").trim(), { noEscape: true }),
        text: hb.compile(read("txt"), { noEscape: true }),
        html: hb.compile(read("html")),
      });
    }
    // Handlebars compiles a template on its first use; a first render here moves that to start-up.
    for (const template of this.#pages.values()) template({});
    for (const parts of this.#mail.values()) for (const template of Object.values(parts)) template({});
  }

  page<N extends PageName>(name: N, model: PageModels[N]): string {
    const template = this.#pages.get(name);
    if (!template) throw new Error(`missing page template ${name}.hbs`);
    return template(model);
  }

  mail<N extends MailName>(name: N, model: MailModels[N]): RenderedMail {
    const template = this.#mail.get(name);
    if (!template) throw new Error(`missing mail template ${name}`);
    return { subject: template.subject(model).replace(/[\r\n]+/g, " "), text: template.text(model), html: template.html(model) };
  }
}
