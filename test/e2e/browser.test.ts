import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { runCli } from "../../src/cli/index.ts";
import { registration } from "../helpers/harness.ts";
import { BROWSER_SKIP, browserTestsEnabled, launchChromium, startBrowserService, type BrowserService } from "../helpers/browser.ts";
import { PASSWORD } from "../helpers/invites.ts";
import { captureIo, postRegistrationTo, waitFor } from "../helpers/service.ts";

// DESIGN.md §4 and §5 in a real Chromium: the invite page and the mailed verification link work
// for a person with a browser, without JavaScript, under the pages' Content-Security-Policy.

const SCREENSHOT = join(tmpdir(), "gatehouse-invite-page.png");

/** Opens a fresh browser context (its own cookies) and a page that records CSP violations. */
async function openPage(browser: Browser): Promise<{ context: BrowserContext; page: Page; cspViolations: string[] }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const cspViolations: string[] = [];
  page.on("console", (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  return { context, page, cspViolations };
}

if (!browserTestsEnabled()) {
  test("browser tests (Chromium): invite page and verification link", { skip: BROWSER_SKIP }, () => {});
} else {
  describe("in a real browser (Chromium)", () => {
    let svc: BrowserService | undefined;
    let browser: Browser | undefined;

    before(async () => {
      svc = await startBrowserService();
      browser = await launchChromium();
    });

    after(async () => {
      try {
        await browser?.close();
      } finally {
        await svc?.close();
      }
    });

    test("an invite link: the page names the issuer, the form creates the account, and the browser is logged in", async () => {
      assert.ok(svc && browser, "service and browser started");
      const { out, err, io } = captureIo();
      assert.equal(await runCli(["keys", "create", "Alice", "--config", svc.cfg.configPath], io), 0, err.join("\n"));
      const created = await fetch(`${svc.url}/api/invite`, { method: "POST", headers: { authorization: `Bearer ${out[0]}` } });
      assert.equal(created.status, 200);
      const invite = (await created.json()) as { url: string };
      assert.ok(invite.url.startsWith(`${svc.url}/invite/`), invite.url);

      const { context, page, cspViolations } = await openPage(browser);
      try {
        const shown = await page.goto(invite.url);
        assert.equal(shown?.status(), 200);
        assert.equal(await page.locator("#issuer").textContent(), "Alice");
        assert.equal(await page.locator("input[name=username]").count(), 1);
        assert.equal(await page.locator("input[name=password][type=password]").count(), 1);

        rmSync(SCREENSHOT, { force: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        assert.ok(statSync(SCREENSHOT).size > 0, "the screenshot is not empty");
        assert.deepEqual([...readFileSync(SCREENSHOT).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "the screenshot is a PNG");

        // A reserved name: the form comes back with the reason and what was typed.
        await page.fill("input[name=username]", "admin");
        await page.fill("input[name=password]", PASSWORD);
        const [refused] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        assert.equal(refused?.status(), 403);
        assert.match((await page.locator("#username-error").textContent()) ?? "", /reserved/);
        assert.equal(await page.inputValue("input[name=username]"), "admin");

        await page.fill("input[name=username]", "Zoe");
        await page.fill("input[name=password]", PASSWORD);
        const [done] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        assert.equal(done?.status(), 200);
        assert.equal(await page.locator("h1").textContent(), "Welcome, zoe!");
        assert.equal(await page.locator("#username").textContent(), "zoe");

        const cookie = (await context.cookies(svc.url)).find((c) => c.name === "identity");
        assert.ok(cookie, "the identity cookie is set");
        assert.equal(cookie.httpOnly, true);
        assert.equal(cookie.sameSite, "Strict");

        const meResponse = await page.goto(`${svc.url}/api/me`);
        assert.equal(meResponse?.status(), 200);
        const me = JSON.parse((await page.locator("body").textContent()) ?? "") as { id: string; name: string };
        assert.equal(me.name, "zoe");

        // The spent invite gets a clear page in the browser too.
        const spent = await page.goto(invite.url);
        assert.equal(spent?.status(), 410);
        assert.match((await page.locator("main").textContent()) ?? "", /already been used/);
        assert.deepEqual(cspViolations, [], "the pages render within their own Content-Security-Policy");
      } finally {
        await context.close();
      }
      assert.ok((await svc.service.ctx.store.listAccounts()).some((a) => a.username === "zoe" && a.invitedBy === "Alice"), "zoe exists, invited by Alice");
    });

    test("a verification mail: its link opens a confirm page, and its button creates the account", async () => {
      assert.ok(svc && browser, "service and browser started");
      const fields = registration({ username: "Yara", mail: "yara.browser@example.org" });
      const res = await postRegistrationTo(svc.url, fields);
      assert.equal(res.status, 200, res.text);

      const mailDir = svc.mailDir;
      const file = await waitFor(
        () => (existsSync(mailDir) ? readdirSync(mailDir).find((name) => name.endsWith(".eml")) : undefined),
        { timeoutMs: 10_000, what: "the outbox to write the verification mail" },
      );
      const mail = await simpleParser(readFileSync(join(mailDir, file)));
      assert.equal(mail.subject, `Confirm your new account at ${new URL(svc.url).host}`);
      const link = /^https?:\/\/\S+$/m.exec(mail.text ?? "")?.[0];
      assert.ok(link, "the mail carries the link");
      assert.ok(link.startsWith(`${svc.url}/register_account/verify/`), link);

      const { context, page, cspViolations } = await openPage(browser);
      try {
        const confirm = await page.goto(link);
        assert.equal(confirm?.status(), 200);
        assert.equal(await page.locator("#username").textContent(), "yara");
        assert.equal(
          (await svc.service.ctx.store.listAccounts()).some((a) => a.username === "yara"),
          false,
          "opening the link changes nothing",
        );

        const [done] = await Promise.all([page.waitForNavigation(), page.click("#confirm")]);
        assert.equal(done?.status(), 200);
        assert.equal(await page.locator("h1").textContent(), "Welcome, yara!");
        assert.equal(await page.locator("#username").textContent(), "yara");
        assert.deepEqual(cspViolations, [], "the pages render within their own Content-Security-Policy");
      } finally {
        await context.close();
      }

      const account = (await svc.service.ctx.store.listAccounts()).find((a) => a.username === "yara");
      assert.ok(account, "the account exists");
      assert.equal(account.hasMail, true);
      assert.equal(account.invitedBy, null);
      const { out, io } = captureIo();
      assert.equal(await runCli(["users", "list", "--config", svc.cfg.configPath], io), 0);
      assert.ok(out.some((line) => line.startsWith("yara\t") && line.endsWith("\tregistered")), out.join("\n"));
    });
  });
}
