import { test } from "node:test";
import assert from "node:assert/strict";
import { withHarness } from "../helpers/harness.ts";

// DESIGN §10: the page language (?lang=, else Accept-Language, else the first of `languages`),
// branding, and HTML pages for browsers wherever they land, while API clients keep their answers.

const VERIFY = "/register_account/verify/";
const ALL = { languages: ["en", "de", "fr", "es"] };
const htmlLang = (text: string) => /<html lang="([^"]+)">/.exec(text)?.[1];

test("the page language is ?lang= when offered, else the best of Accept-Language, else the first of languages", async () => {
  await withHarness(ALL, async (h) => {
    const cases: [string, Record<string, string>, string, RegExp][] = [
      [`${VERIFY}?lang=de`, {}, "de", /Konto bestätigen/],
      [`${VERIFY}?lang=de`, { "accept-language": "fr" }, "de", /Konto bestätigen/],
      [VERIFY, { "accept-language": "fr-CH, fr;q=0.9, en;q=0.8" }, "fr", /Vérifier votre compte/],
      [VERIFY, { "accept-language": "it, es;q=0.5" }, "es", /Verifique su cuenta/],
      [`${VERIFY}?lang=it`, { "accept-language": "es" }, "es", /Verifique su cuenta/],
      [VERIFY, { "accept-language": "it" }, "en", /Verify your account/],
      [VERIFY, {}, "en", /Verify your account/],
      [`${VERIFY}?lang=DE-at`, {}, "de", /Konto bestätigen/],
    ];
    for (const [path, headers, lang, words] of cases) {
      const res = await h.http.get(path).set(headers);
      const what = `${path} ${JSON.stringify(headers)}`;
      assert.equal(res.status, 200, what);
      assert.equal(htmlLang(res.text), lang, what);
      assert.equal(res.headers["content-language"], lang, what);
      assert.match(res.text, words, what);
      assert.match(String(res.headers["vary"]), /accept-language/i, what);
    }
  });
});

test("a language chosen with ?lang= stays chosen through the form, and the switcher offers the others", async () => {
  await withHarness(ALL, async (h) => {
    const page = await h.http.get(`${VERIFY}?lang=fr`);
    assert.match(page.text, /<form method="post" action="\/register_account\/verify\/\?lang&#x3D;fr">/, "= written as its character reference");
    for (const [code, name] of [["en", "English"], ["de", "Deutsch"], ["es", "español"]]) {
      assert.match(page.text, new RegExp(`<a href="/register_account/verify/\\?lang&#x3D;${code}" lang="${code}" hreflang="${code}">${name}</a>`));
    }
    assert.match(page.text, /<span lang="fr" aria-current="true">français<\/span>/);
    const wrong = await h.http.post(`${VERIFY}?lang=fr`).type("form").send({ uuid: "nope" });
    assert.equal(wrong.status, 404);
    assert.equal(htmlLang(wrong.text), "fr");
    assert.match(wrong.text, /Ce code est inconnu ou a expiré/);
  });
});

test("with one language there is no switcher, and Accept-Language cannot ask for another", async () => {
  await withHarness({}, async (h) => {
    const res = await h.http.get(VERIFY).set("accept-language", "de");
    assert.equal(htmlLang(res.text), "en");
    assert.doesNotMatch(res.text, /hreflang/);
  });
});

test("a browser gets an HTML page at /, for an unknown path and for a wrong method; API clients keep their answers", async () => {
  await withHarness({ site: { name: "Example Chat", homeUrl: "https://example.org/" }, ...ALL }, async (h) => {
    const browser = { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "accept-language": "de" };
    const home = await h.http.get("/").set(browser);
    assert.equal(home.status, 200);
    assert.match(String(home.headers["content-type"]), /^text\/html/);
    assert.match(home.text, /<h1>Example Chat<\/h1>/);
    assert.match(home.text, /href="\/register_account\/verify\/"/);

    const missing = await h.http.get("/no/such/page").set(browser);
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers["content-type"]), /^text\/html/);
    assert.match(missing.text, /<h1>Nicht gefunden<\/h1>/);
    assert.match(missing.text, /<a href="https:\/\/example\.org\/">Zurück zu Example Chat<\/a>/);

    const wrongMethod = await h.http.delete(VERIFY).set(browser);
    assert.equal(wrongMethod.status, 405);
    assert.ok(wrongMethod.headers["allow"], "Allow is still sent");
    assert.match(String(wrongMethod.headers["content-type"]), /^text\/html/);
    assert.match(wrongMethod.text, /Fehler 405/);

    for (const [method, path, status] of [["get", "/", 404], ["get", "/no/such/page", 404], ["delete", VERIFY, 405]] as const) {
      const plain = await h.http[method](path);
      assert.equal(plain.status, status, `${method} ${path}`);
      assert.match(String(plain.headers["content-type"]), /^text\/plain/, `${method} ${path}: no Accept, plain text as ever`);
      const json = await h.http[method](path).set("accept", "application/json");
      assert.equal(json.status, status);
      assert.ok(json.body.error, `${method} ${path}: JSON for JSON clients`);
    }
    assert.equal((await h.http.post("/").set(browser)).status, 404, "POST / is not a page");
  });
});

test("the Content-Security-Policy lets the page load the logo's origin and nothing more", async () => {
  await withHarness({ site: { logoUrl: "https://cdn.example.org/brand/logo.svg" } }, async (h) => {
    const res = await h.http.get(VERIFY);
    const csp = String(res.headers["content-security-policy"]);
    assert.match(csp, /img-src 'self' data: https:\/\/cdn\.example\.org;/);
    assert.doesNotMatch(csp, /brand|\*/);
    assert.match(csp, /default-src 'none'/);
    assert.match(res.text, /<img id="site-logo" src="https:\/\/cdn\.example\.org\/brand\/logo\.svg"/);
  });
  await withHarness({}, async (h) => {
    const csp = String((await h.http.get(VERIFY)).headers["content-security-policy"]);
    assert.match(csp, /img-src 'self' data:;/);
  });
});
