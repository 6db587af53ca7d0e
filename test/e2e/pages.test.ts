import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import type { Browser, Page } from "playwright-core";
import { runCli } from "../../src/cli/index.ts";
import { TEMPLATE_DIR } from "../../src/templates.ts";
import { registration } from "../helpers/harness.ts";
import { BROWSER_SKIP, browserTestsEnabled, launchChromium, openPage, startBrowserService, type BrowserService } from "../helpers/browser.ts";
import { PASSWORD } from "../helpers/invites.ts";
import { captureIo, postRegistrationTo, waitFor } from "../helpers/service.ts";

// DESIGN §10 in a real Chromium: every page and the verification mail's HTML, at 360 px and
// 1000 px, in English and German: no horizontal scroll, the site's name and logo, the language's
// own words, errors tied to their fields, and forms that a keyboard alone can send.

const SCREENS = join(tmpdir(), "gatehouse-pages");
const WIDTHS = [360, 1000] as const;
const SITE = "Example Chat";
const SIGN_IN = "https://chat.example.org/login";
const LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="120" height="40" viewBox="0 0 120 40"><rect width="120" height="40" rx="6" fill="#0a7d55"/><text x="60" y="26" font-family="sans-serif" font-size="16" fill="#fff" text-anchor="middle">LOGO</text></svg>`;

type Catalogue = { [key: string]: string | Catalogue };
const catalogues = new Map<string, Catalogue>();

/** A catalogue string read straight from the shipped JSON, with its {{values}} put in. */
function tr(lang: string, key: string, values: Record<string, string | number> = {}): string {
  if (!catalogues.has(lang)) catalogues.set(lang, JSON.parse(readFileSync(join(TEMPLATE_DIR, "locales", `${lang}.json`), "utf8")) as Catalogue);
  let node: string | Catalogue | undefined = catalogues.get(lang);
  for (const part of key.split(".")) node = typeof node === "object" ? node[part] : undefined;
  assert.equal(typeof node, "string", `${lang}: ${key}`);
  return (node as string).replace(/\{\{(\w+)\}\}/g, (_, name: string) => String(values[name]));
}

/** A logo on an origin of its own, so the pages' CSP must allow exactly it. */
async function startLogoServer(): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => res.writeHead(200, { "content-type": "image/svg+xml" }).end(LOGO_SVG));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { url: `http://localhost:${(server.address() as AddressInfo).port}/logo.svg`, server };
}


/**
 * Looks at what the page shows at each width: no horizontal scroll, the site's name and a loaded
 * logo, the language asked for; saves a screenshot per width.
 */
async function lookAt(page: Page, lang: string, name: string, options: { mail?: boolean } = {}): Promise<void> {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 800 });
    const what = `${lang} ${name} at ${width}px`;
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${what}: scrolls sideways by ${overflow}px`);
    assert.equal(await page.locator("html").getAttribute("lang"), lang, `${what}: <html lang>`);
    assert.equal((await page.locator("#site-name").textContent())?.trim(), SITE, `${what}: the site's name`);
    const logo = page.locator(options.mail ? "img" : "#site-logo").first();
    assert.ok(await logo.isVisible(), `${what}: the logo is shown`);
    assert.ok(await logo.evaluate((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), `${what}: the logo loaded`);
    const file = join(SCREENS, `${lang}-${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
  }
  await page.setViewportSize({ width: WIDTHS[0], height: 800 });
}

/** Presses Tab until the element with `id` has the focus: how a keyboard user reaches it. */
async function tabTo(page: Page, id: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    if (await page.evaluate(() => document.activeElement?.id ?? "") === id) return;
    await page.keyboard.press("Tab");
  }
  assert.fail(`Tab never reached #${id}`);
}

async function submitByEnter(page: Page): Promise<number | undefined> {
  const [response] = await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  return response?.status();
}

async function describedBy(page: Page, id: string): Promise<string[]> {
  return ((await page.locator(`#${id}`).getAttribute("aria-describedby")) ?? "").split(/\s+/).filter(Boolean);
}

if (!browserTestsEnabled()) {
  test("browser tests (Chromium): every page and the mail in two languages at two widths", { skip: BROWSER_SKIP }, () => {});
} else {
  describe("every page and the verification mail, in a real browser (Chromium)", () => {
    let svc: BrowserService | undefined;
    let browser: Browser | undefined;
    let logo: { url: string; server: Server } | undefined;
    let apiKey = "";

    before(async () => {
      mkdirSync(SCREENS, { recursive: true });
      logo = await startLogoServer();
      svc = await startBrowserService({
        languages: ["en", "de", "fr", "es"],
        site: { name: SITE, logoUrl: logo.url, accentColor: "#0a7d55", signInUrl: SIGN_IN, supportUrl: "mailto:help@example.org" },
      });
      browser = await launchChromium();
      const { out, err, io } = captureIo();
      assert.equal(await runCli(["keys", "create", "Alice", "--config", svc.cfg.configPath], io), 0, err.join("\n"));
      apiKey = out[0]!;
      console.log(`# screenshots: ${SCREENS}`);
    });

    after(async () => {
      try {
        await browser?.close();
      } finally {
        await svc?.close();
        logo?.server.close();
      }
    });

    async function newInvite(): Promise<string> {
      const created = await fetch(`${svc!.url}/api/invite`, { method: "POST", headers: { authorization: `Bearer ${apiKey}` } });
      assert.equal(created.status, 200);
      return ((await created.json()) as { url: string }).url;
    }

    async function mailTo(address: string): Promise<{ html: string; text: string; subject: string }> {
      const mailDir = svc!.mailDir;
      let found: { html: string; text: string; subject: string } | undefined;
      await waitFor(async () => {
        for (const file of existsSync(mailDir) ? readdirSync(mailDir).filter((f) => f.endsWith(".eml")) : []) {
          const mail = await simpleParser(readFileSync(join(mailDir, file)));
          if (mail.to && !Array.isArray(mail.to) && mail.to.value[0]?.address === address) {
            found = { html: String(mail.html), text: mail.text ?? "", subject: mail.subject ?? "" };
          }
        }
        return found;
      }, { timeoutMs: 15_000, what: `the verification mail to ${address}` });
      return found!;
    }

    for (const [lang, locale, who] of [["en", "en-GB", "ella"], ["de", "de-DE", "dirk"]] as const) {
      test(`${lang}: every page and the mail fit 360 px and 1000 px, show the site, and speak ${lang}`, async () => {
        assert.ok(svc && browser, "service and browser started");
        const { context, page, cspViolations } = await openPage(browser, { locale, viewport: { width: WIDTHS[0], height: 800 } });
        try {
          // The bare address and an unknown path: pages, not text.
          assert.equal((await page.goto(`${svc.url}/`))?.status(), 200);
          assert.equal(await page.locator("h1").textContent(), SITE);
          await lookAt(page, lang, "home");
          assert.equal((await page.goto(`${svc.url}/no/such/page`))?.status(), 404);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "status.404"));
          assert.equal(await page.locator("#support").getAttribute("href"), "mailto:help@example.org", "support on every page");
          await lookAt(page, lang, "not-found");
          assert.equal((await page.goto(`${svc.url}/register_account/`))?.status(), 405);
          assert.equal(await page.locator("#reason").textContent(), tr(lang, "errors.METHOD_NOT_ALLOWED"));
          await lookAt(page, lang, "method-not-allowed");

          // The website passes the language of its own page; the mail is written in it.
          const address = `${who}@example.org`;
          const res = await postRegistrationTo(svc.url, { ...registration({ username: who, mail: address }), lang });
          assert.equal(res.status, 200, res.text);
          const mail = await mailTo(address);
          assert.equal(mail.subject, tr(lang, "mail.verify.subject", { site: SITE }));
          const link = /^https?:\/\/\S+\/verify\/\S+$/m.exec(mail.text)?.[0];
          assert.ok(link, "the text part carries the link");
          await page.setContent(mail.html, { waitUntil: "load" });
          assert.equal((await page.locator("p").first().textContent())?.trim(), tr(lang, "mail.greeting", { name: who }));
          assert.equal(await page.locator("#link").textContent(), link, "the link is also there as text");
          assert.equal(await page.locator("#button").getAttribute("href"), link);
          await lookAt(page, lang, "mail-verify", { mail: true });

          // The verify form: a wrong code comes back with the reason at the field, by keyboard alone.
          assert.equal((await page.goto(`${svc.url}/register_account/verify/`))?.status(), 200);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.verifyForm.heading"));
          await lookAt(page, lang, "verify-form");
          await tabTo(page, "code");
          await page.keyboard.type("not-the-code");
          assert.equal(await submitByEnter(page), 404);
          assert.equal(await page.locator("#code").getAttribute("aria-invalid"), "true");
          assert.deepEqual(await describedBy(page, "code"), ["code-error"]);
          assert.equal(await page.locator("#code-error").textContent(), tr(lang, "errors.TOKEN_UNKNOWN"));
          assert.equal(await page.inputValue("#code"), "not-the-code", "what was typed is kept");
          await lookAt(page, lang, "verify-form-error");

          // The mailed link: confirm page, its one button by keyboard, then success leading to sign-in.
          assert.equal((await page.goto(link))?.status(), 200);
          assert.equal(await page.locator("#username").textContent(), who);
          assert.equal(await page.locator("#confirm").textContent(), tr(lang, "pages.verifyConfirm.submit", { name: who }));
          await lookAt(page, lang, "verify-confirm");
          await tabTo(page, "confirm");
          assert.equal(await submitByEnter(page), 200);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.verifySuccess.heading", { name: who }));
          assert.equal(await page.locator("#next").getAttribute("href"), SIGN_IN);
          assert.equal(await page.locator("#next").textContent(), tr(lang, "layout.signIn"));
          await lookAt(page, lang, "verify-success");
          assert.equal((await page.goto(link))?.status(), 200);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.verifySuccess.alreadyHeading"));
          await lookAt(page, lang, "verify-already");
          assert.equal((await page.goto(`${svc.url}/register_account/verify/no-such-token`))?.status(), 404);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.verifyFailure.heading"));
          await lookAt(page, lang, "verify-failure");

          // The invite page: the password rule beside its field; a refused name at the name field.
          const invite = await newInvite();
          assert.equal((await page.goto(invite))?.status(), 200);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.invite.heading", { site: SITE }));
          assert.equal(await page.locator("#password-hint").textContent(), tr(lang, "pages.invite.passwordRule", { count: 8 }));
          assert.deepEqual(await describedBy(page, "password"), ["password-hint"]);
          await lookAt(page, lang, "invite");
          await tabTo(page, "username");
          await page.keyboard.type("admin");
          await page.keyboard.press("Tab");
          await page.keyboard.type(PASSWORD);
          assert.equal(await submitByEnter(page), 403);
          assert.equal(await page.locator("#username").getAttribute("aria-invalid"), "true");
          assert.deepEqual(await describedBy(page, "username"), ["username-error"]);
          assert.equal(await page.locator("#username-error").textContent(), tr(lang, "errors.USERNAME_RESERVED"));
          assert.equal(await page.locator("#password").getAttribute("aria-invalid"), null, "the password field is not the one at fault");
          await lookAt(page, lang, "invite-error");
          // The name field has the focus again: correct it and send, still by keyboard.
          assert.equal(await page.evaluate(() => document.activeElement?.id), "username");
          await page.keyboard.press("ControlOrMeta+A");
          await page.keyboard.type(`${who}2`);
          await page.keyboard.press("Tab");
          await page.keyboard.type(PASSWORD);
          assert.equal(await submitByEnter(page), 200);
          assert.equal(await page.locator("h1").textContent(), tr(lang, "pages.inviteSuccess.heading", { name: `${who}2` }));
          assert.equal(await page.locator("#next").getAttribute("href"), SIGN_IN);
          await lookAt(page, lang, "invite-success");
          assert.equal((await page.goto(invite))?.status(), 410);
          assert.equal(await page.locator("#reason").textContent(), tr(lang, "errors.INVITE_GONE_used"));
          await lookAt(page, lang, "invite-gone");

          assert.deepEqual(cspViolations, [], "every page renders within its Content-Security-Policy, logo included");
        } finally {
          await context.close();
        }
      });
    }
  });
}
