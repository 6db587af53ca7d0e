import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import type { Browser } from "playwright-core";
import { registration } from "../helpers/harness.ts";
import { BROWSER_SKIP, browserTestsEnabled, launchChromium, openPage, startBrowserService, type BrowserService } from "../helpers/browser.ts";
import { postRegistrationTo, waitFor } from "../helpers/service.ts";

// DESIGN §11 in a real Chromium: the ALTCHA widget, served by gatehouse, computes the proof of work
// in its worker under the pages' strict Content-Security-Policy, and the form goes through with it.


function mailFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith(".eml")).sort() : [];
}

if (!browserTestsEnabled()) {
  test("browser tests (Chromium): the proof-of-work widget", { skip: BROWSER_SKIP }, () => {});
} else {
  describe("proof of work in a real browser (Chromium)", () => {
    let svc: BrowserService | undefined;
    let browser: Browser | undefined;

    before(async () => {
      svc = await startBrowserService({ antibot: { proofOfWork: "always", complexity: 20_000 } });
      browser = await launchChromium();
    });

    after(async () => {
      try {
        await browser?.close();
      } finally {
        await svc?.close();
      }
    });

    test("the widget solves the challenge and the resend form goes through; its solution sent again is refused as used", async () => {
      assert.ok(svc && browser, "service and browser started");
      const fields = registration({ username: "Wanda", mail: "wanda.pow@example.org" });
      const registered = await postRegistrationTo(svc.url, fields);
      assert.equal(registered.status, 200, registered.text);
      await waitFor(() => mailFiles(svc!.mailDir).length === 1, { timeoutMs: 10_000, what: "the first verification mail" });

      const { context, page, cspViolations, failures } = await openPage(browser, {}, 20_000);
      let payload = "";
      try {
        const shown = await page.goto(`${svc.url}/register_account/verify/resend`);
        assert.equal(shown?.status(), 200);
        await page.fill("input[name=username]", fields.username);
        await page.fill("input[name=mail]", fields.mail);
        // The widget puts its payload in a hidden field named "altcha" once its worker found the solution.
        await page.waitForFunction(() => (document.querySelector<HTMLInputElement>("input[name=altcha]")?.value ?? "") !== "", undefined, { timeout: 30_000 });
        payload = await page.inputValue("input[name=altcha]");
        const decoded = JSON.parse(Buffer.from(payload, "base64").toString("utf8")) as { solution: { counter: number } };
        assert.ok(decoded.solution.counter >= 10_000, `the browser did the work: counter ${decoded.solution.counter}`);

        const [done] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        assert.equal(done?.status(), 200);
        assert.ok(await page.locator("#resent").isVisible(), "the answer page");
        assert.deepEqual(cspViolations, [], "the widget runs within the page's Content-Security-Policy");
        assert.deepEqual(failures, [], "no script error on the page");
      } finally {
        await context.close();
      }

      await waitFor(() => mailFiles(svc!.mailDir).length === 2, { timeoutMs: 10_000, what: "the second verification mail" });
      const second = await simpleParser(readFileSync(join(svc.mailDir, mailFiles(svc.mailDir).find((f) => !readFileSync(join(svc!.mailDir, f), "utf8").includes(encodeURIComponent(registered.text)))!)));
      const link = /^https?:\/\/\S+$/m.exec(second.text ?? "")?.[0];
      assert.ok(link && !link.endsWith(encodeURIComponent(registered.text)), "the new mail carries a new link");

      const replay = await fetch(`${svc.url}/register_account/verify/resend`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username: fields.username, mail: fields.mail, altcha: payload }).toString(),
      });
      assert.equal(replay.status, 403);
      assert.match(await replay.text(), /This check was used already/);
      assert.equal(mailFiles(svc.mailDir).length, 2, "the replay sent nothing");
    });

    test("without JavaScript the form says it needs JavaScript, and sending it anyway gets the reason at the widget", async () => {
      assert.ok(svc && browser, "service and browser started");
      const { context, page } = await openPage(browser, { javaScriptEnabled: false }, 20_000);
      try {
        const shown = await page.goto(`${svc.url}/register_account/verify/`);
        assert.equal(shown?.status(), 200);
        assert.ok(await page.locator("#pow-noscript").isVisible(), "the noscript notice shows");
        assert.match((await page.locator("#pow-noscript").textContent()) ?? "", /needs JavaScript/);
        await page.fill("input[name=uuid]", "some-code");
        const [refused] = await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
        assert.equal(refused?.status(), 400);
        assert.match((await page.locator("#pow-error").textContent()) ?? "", /Turn JavaScript on/);
      } finally {
        await context.close();
      }
    });
  });
}
