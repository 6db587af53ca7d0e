import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type Config } from "../../src/config.ts";
import { formatDate, Templates, TemplateError } from "../../src/templates.ts";
import { runCli } from "../../src/cli/index.ts";
import { AUTH_TOKEN } from "../helpers/harness.ts";
import { captureIo, editConfig, withServiceDir } from "../helpers/service.ts";

// DESIGN §10: templates.dir overrides the built-in templates file by file, a missing file falls
// back to the built-in one, and a template that cannot be used is refused at load.

function config(overrides: Record<string, unknown> = {}): Config {
  return parseConfig({ register: { authTokens: [AUTH_TOKEN] }, publicUrl: "https://signup.example.org", ...overrides });
}

function withDir(files: Record<string, string>, run: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-templates-"));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    run(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const FORM = { action: "/register_account/verify/" };

test("with no templates.dir every page and the verify mail come from the built-in templates", () => {
  const t = new Templates(config());
  assert.ok(t.pageNames.includes("invite") && t.pageNames.includes("verify-form") && t.pageNames.includes("home"), t.pageNames.join());
  assert.deepEqual(t.mailKinds.sort(), ["approval-approved", "approval-expired", "approval-rejected", "approval-request", "verify"]);
  const page = t.page("verify-form", FORM);
  assert.match(page, /<html lang="en">/);
  assert.match(page, /<span class="site" id="site-name">signup\.example\.org<\/span>/, "the name falls back to publicUrl's host");
});

test("an operator's file replaces the built-in one of the same name; the others stay built in", () => {
  withDir({ "pages/verify-form.hbs": `{{#> layout title="Own"}}<p id="own">{{t "pages.verifyForm.intro"}}</p>{{/layout}}` }, (dir) => {
    const t = new Templates(config({ templates: { dir } }));
    const form = t.page("verify-form", FORM);
    assert.match(form, /<p id="own">Enter the verification code/);
    assert.match(form, /id="site-name"/, "the built-in layout still frames it");
    assert.match(t.page("verify-failure", FORM), /We could not verify this account/, "a page the dir lacks is the built-in one");
  });
});

test("an operator's catalogue rewords single strings and keeps the rest of the built-in one", () => {
  withDir({ "locales/de.json": JSON.stringify({ pages: { verifyForm: { heading: "Willkommen bei uns" } } }) }, (dir) => {
    const t = new Templates(config({ templates: { dir }, languages: ["de"] }));
    const page = t.page("verify-form", FORM, "de");
    assert.match(page, /<h1>Willkommen bei uns<\/h1>/);
    assert.match(page, /Bestätigungscode/, "the other German strings stay");
  });
});

test("an operator can add a language with a catalogue of their own; what it lacks is English", () => {
  withDir({ "locales/nl.json": JSON.stringify({ pages: { verifyForm: { heading: "Bevestig je account" } } }) }, (dir) => {
    const t = new Templates(config({ templates: { dir }, languages: ["nl", "en"] }));
    const page = t.page("verify-form", FORM);
    assert.match(page, /<html lang="nl">/);
    assert.match(page, /<h1>Bevestig je account<\/h1>/);
    assert.match(page, /Verification code/);
  });
});

test("a new mail kind is found by its files, with no code naming it", () => {
  withDir({
    "mail/hello.subject.txt": `{{t "mail.verify.subject" site=site.name}}`,
    "mail/hello.txt": `{{t "mail.greeting" name=username}}`,
    "mail/hello.html": `<p>{{t "mail.greeting" name=username}}</p>`,
  }, (dir) => {
    const t = new Templates(config({ templates: { dir }, site: { name: "Example Chat" } }));
    assert.deepEqual(t.mailKinds.filter((kind) => !kind.startsWith("approval-")).sort(), ["hello", "verify"]);
    const mail = t.mail("hello" as "verify", { username: "<b>dave</b>", link: "", expiresAt: 0 });
    assert.equal(mail.subject, "Confirm your new account at Example Chat");
    assert.equal(mail.text, "Hello <b>dave</b>,", "text parts are not HTML-escaped");
    assert.equal(mail.html, "<p>Hello &lt;b&gt;dave&lt;/b&gt;,</p>", "HTML parts are");
  });
});

test("what cannot be used is refused at load, naming the file and the reason", () => {
  const cases: [string, Record<string, string>, RegExp, Record<string, unknown>?][] = [
    ["a template that does not compile", { "pages/invite.hbs": "{{#if x}}<p>" }, /pages\/invite\.hbs.*does not compile/],
    ["a key en.json lacks", { "pages/invite.hbs": `{{t "pages.invite.nosuchkey"}}` }, /pages\/invite\.hbs.*pages\.invite\.nosuchkey.*en\.json lacks/],
    ["a mail kind without its HTML part", { "mail/hello.subject.txt": "x", "mail/hello.txt": "x" }, /mail\/hello\.html.*missing/],
    ["a catalogue that is not JSON", { "locales/de.json": "{ nope" }, /de\.json.*not JSON/],
    ["a catalogue of something else than strings", { "locales/de.json": `{"a": [1]}` }, /de\.json.*not an object of strings/],
    ["a language offered without a catalogue", {}, /locales\/it\.json.*is missing/, { languages: ["en", "it"] }],
  ];
  for (const [what, files, reason, extra] of cases) {
    withDir(files, (dir) => {
      assert.throws(() => new Templates(config({ templates: { dir }, ...extra })), (err: unknown) => {
        assert.ok(err instanceof TemplateError, what);
        assert.match(err.message, reason, what);
        return true;
      }, what);
    });
  }
  assert.throws(() => new Templates(config({ templates: { dir: "/nonexistent/gatehouse-templates" } })), /templates\.dir does not exist/);
});

test("values are escaped in pages: a name with markup is shown as text", () => {
  const t = new Templates(config());
  const page = t.page("verify-confirm", { action: "/x", username: `<img src=x onerror=alert(1)>"`, expiresAt: Date.UTC(2026, 11, 8, 14, 37) });
  assert.ok(!page.includes("<img src=x"), "no markup from the name");
  assert.match(page, /&lt;img src&#x3D;x onerror&#x3D;alert\(1\)&gt;&quot;/);
});

test("dates are written in words of the page's language", () => {
  const t = new Templates(config({ languages: ["en", "de", "fr", "es"] }));
  const at = Date.UTC(2026, 11, 8, 14, 37);
  const model = { action: "/x", username: "dave", expiresAt: at };
  assert.match(t.page("verify-confirm", model, "en"), /December 8, 2026 at 2:37\s?PM UTC/);
  assert.match(t.page("verify-confirm", model, "de"), /8\. Dezember 2026 um 14:37 UTC/);
  assert.match(t.page("verify-confirm", model, "fr"), /8 décembre 2026 (à )?14:37 UTC/);
  assert.match(t.page("verify-confirm", model, "es"), /8 de diciembre de 2026 a las 14:37 UTC/);
  assert.doesNotMatch(t.page("verify-confirm", model, "en"), /GMT/);
});

test("a broken template in templates.dir stops start-up and check-config, naming the file; a reload keeps the running templates", async () => {
  await withServiceDir({}, async ({ cfg, start }) => {
    const own = join(cfg.dir, "own-templates");
    mkdirSync(join(own, "pages"), { recursive: true });
    writeFileSync(join(own, "pages", "verify-form.hbs"), `{{#> layout title="x"}}<p id="own">{{t "pages.verifyForm.intro"}}</p>{{/layout}}`);
    cfg.replace(editConfig(cfg.raw, (c) => (c.templates = { dir: own })));
    const svc = await start();
    const page = async () => (await fetch(`${svc.service.url}/register_account/verify/`)).text();
    assert.match(await page(), /<p id="own">/);

    writeFileSync(join(own, "pages", "verify-form.hbs"), `{{#> layout title="x"}}{{#if}}{{/layout}}`);
    assert.equal(svc.service.reload(), false, "the reload is refused");
    const refused = svc.logs.lines.find((l) => l["msg"] === "config reload refused; keeping the last good config");
    assert.ok(refused, svc.logs.text());
    assert.match(String(refused["reason"]), /pages\/verify-form\.hbs/);
    assert.match(await page(), /<p id="own">/, "the last good templates stay in force");

    const check = captureIo();
    assert.equal(await runCli(["check-config", "--config", cfg.configPath], check.io), 1);
    assert.match(check.err.join("\n"), /template .*pages\/verify-form\.hbs.*does not compile/);

    await svc.close();
    await assert.rejects(start(), /template .*pages\/verify-form\.hbs.*does not compile/, "start-up is refused");
  });
});

test("formatDate writes each time as Intl does in its language, also when a minute's text was kept", () => {
  const options: Intl.DateTimeFormatOptions = { year: "numeric", month: "long", day: "numeric", hour: "numeric", minute: "2-digit", timeZone: "UTC", timeZoneName: "short" };
  const base = Date.UTC(2026, 11, 1, 21, 59, 0);
  for (const lang of ["en", "de"]) {
    const intl = new Intl.DateTimeFormat(lang, options);
    // The same minute twice (the second from what was kept), the next minute, and an hour later.
    for (const ms of [base + 1_234, base + 59_999, base + 60_000, base + 3_600_000 + 5]) {
      assert.equal(formatDate(ms, lang), intl.format(ms), `${lang} ${ms}`);
    }
  }
  assert.notEqual(formatDate(base, "en"), formatDate(base, "de"));
});
