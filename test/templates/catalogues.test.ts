import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { catalogueKeys, keysUsed, TEMPLATE_DIR } from "../../src/templates.ts";

// DESIGN §10: every page and mail exists in each shipped language. en.json is the reference: a key
// another catalogue lacks, or one a template names that en.json lacks, fails here.

type Catalogue = { [key: string]: string | Catalogue };

const LOCALES = join(TEMPLATE_DIR, "locales");
const load = (lang: string) => JSON.parse(readFileSync(join(LOCALES, `${lang}.json`), "utf8")) as Catalogue;
const languages = readdirSync(LOCALES).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();

function valueAt(catalogue: Catalogue, key: string): string | undefined {
  let node: string | Catalogue | undefined = catalogue;
  for (const part of key.split(".")) node = typeof node === "object" ? node[part] : undefined;
  return typeof node === "string" ? node : undefined;
}

const placeholders = (text: string) => [...text.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]).sort();

function templateFiles(): string[] {
  return ["pages", "mail"].flatMap((sub) => readdirSync(join(TEMPLATE_DIR, sub)).map((f) => join(sub, f)));
}

test("English, German, French and Spanish are shipped", () => {
  for (const lang of ["en", "de", "fr", "es"]) assert.ok(languages.includes(lang), `locales/${lang}.json`);
});

test("every catalogue has every key of en.json, and no key en.json lacks", () => {
  const reference = catalogueKeys(load("en"));
  assert.ok(reference.length > 50, "en.json holds the pages' and mails' strings");
  for (const lang of languages.filter((l) => l !== "en")) {
    const keys = new Set(catalogueKeys(load(lang)));
    const missing = reference.filter((key) => !keys.has(key));
    assert.deepEqual(missing, [], `locales/${lang}.json lacks keys of en.json`);
    const extra = [...keys].filter((key) => !reference.includes(key));
    assert.deepEqual(extra, [], `locales/${lang}.json has keys en.json lacks`);
  }
});

test("every translation uses the same {{values}} as the English string, and none is empty", () => {
  const en = load("en");
  for (const lang of languages.filter((l) => l !== "en")) {
    const catalogue = load(lang);
    for (const key of catalogueKeys(en)) {
      const text = valueAt(catalogue, key);
      if (text === undefined) continue; // reported by the test above
      assert.notEqual(text.trim(), "", `${lang}: ${key} is empty`);
      assert.deepEqual(placeholders(text), placeholders(valueAt(en, key)!), `${lang}: ${key} names other values than en`);
    }
  }
});

test("every key a template names is in en.json", () => {
  const known = new Set(catalogueKeys(load("en")));
  let used = 0;
  for (const file of templateFiles()) {
    for (const key of keysUsed(readFileSync(join(TEMPLATE_DIR, file), "utf8"))) {
      used += 1;
      assert.ok(known.has(key), `${file} uses ${key}, which en.json lacks`);
    }
  }
  assert.ok(used > 40, `the templates take their words from the catalogues (${used} keys used)`);
});

test("the key check sees keys inside block helpers and subexpressions, and a missing one is reported", () => {
  const source = `{{#> layout title=(t "a.title")}}{{#if x}}<p>{{t "b.text" name=y}}</p>{{/if}}{{/layout}}`;
  assert.deepEqual(keysUsed(source), ["a.title", "b.text"]);
  const known = new Set(catalogueKeys(load("en")));
  assert.equal(known.has("b.text"), false, "a key no catalogue has is caught");
});

test("no page or mail template writes words outside the catalogues", () => {
  // Text between tags that is not only {{…}}, punctuation or whitespace would be an untranslated string.
  for (const file of templateFiles()) {
    const source = readFileSync(join(TEMPLATE_DIR, file), "utf8")
      .replace(/<style[\s\S]*?<\/style>/g, "")
      .replace(/<[^>]*>/g, "\n")
      .replace(/\{\{[^}]*\}\}/g, "");
    const words = source.split("\n").map((line) => line.trim()).filter((line) => /\p{L}{2,}/u.test(line));
    assert.deepEqual(words, [], `${file}: words outside {{t}}`);
  }
});
