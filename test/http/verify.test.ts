import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import type supertest from "supertest";
import { postRegistration, registration, storeSnapshot, withHarness, type Harness } from "../helpers/harness.ts";

// DESIGN.md §4: the verification form, the mailed link's confirm page, and completion.

const BASE = "/register_account/";
const VERIFY = `${BASE}verify/`;

async function register(h: Harness, username: string, mail = `${username}@example.org`): Promise<string> {
  const res = await postRegistration(h, registration({ username, mail }));
  assert.equal(res.status, 200, res.text);
  return res.text;
}

function assertPageHeaders(res: supertest.Response): void {
  assert.match(String(res.headers["content-type"]), /^text\/html; charset=utf-8/);
  assert.ok(res.headers["content-security-policy"], "Content-Security-Policy");
  assert.match(String(res.headers["content-security-policy"]), /default-src 'none'/);
  assert.match(String(res.headers["content-security-policy"]), /frame-ancestors 'none'/);
  assert.equal(res.headers["x-content-type-options"], "nosniff");
  assert.equal(res.headers["referrer-policy"], "no-referrer");
}

async function accountNames(h: Harness): Promise<string[]> {
  return (await h.ctx.store.listAccounts()).map((a) => a.username);
}

test("GET verify/ shows Prosody's form asking for the token, posting uuid", async () => {
  await withHarness({}, async (h) => {
    const res = await h.http.get(VERIFY);
    assert.equal(res.status, 200);
    assertPageHeaders(res);
    assert.match(res.text, /<form method="post" action="\/register_account\/verify\/">/);
    assert.match(res.text, /<input [^>]*name="uuid"/);
  });
});

test("POST verify/ with a uuid form field completes the registration", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "mona");
    const res = await h.http.post(VERIFY).type("form").send({ uuid: token });
    assert.equal(res.status, 200, res.text);
    assertPageHeaders(res);
    assert.match(res.text, /Welcome, mona!/);
    assert.deepEqual(await accountNames(h), ["mona"]);
    assert.deepEqual(await h.ctx.store.listPending(h.clock.now()), []);
  });
});

test("POST verify/ with a token form field completes the registration", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "nick");
    const res = await h.http.post(VERIFY).type("form").send({ token });
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /Welcome, nick!/);
    assert.deepEqual(await accountNames(h), ["nick"]);
  });
});

test("POST verify/ tolerates whitespace around a pasted token", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "olga");
    const res = await h.http.post(VERIFY).type("form").send({ uuid: `  ${token}\r\n` });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(await accountNames(h), ["olga"]);
  });
});

test("POST verify/ with an unknown, empty or missing token shows the form again with the reason at the field, with 404", async () => {
  await withHarness({}, async (h) => {
    await register(h, "pete");
    const before = await storeSnapshot(h);
    for (const form of [{ uuid: "no-such-token" }, { uuid: "" }, {}, { other: "x" }]) {
      const res = await h.http.post(VERIFY).type("form").send(form);
      assert.equal(res.status, 404, JSON.stringify(form));
      assertPageHeaders(res);
      assert.match(res.text, /<form method="post" action="\/register_account\/verify\/">/, "the form again");
      assert.match(res.text, /<input [^>]*name="uuid"[^>]*aria-invalid="true" aria-describedby="code-error"/, "the field is marked");
      assert.match(res.text, /<p class="error" role="alert" id="code-error">This code is unknown or has expired/);
    }
    const typo = await h.http.post(VERIFY).type("form").send({ uuid: "no-such-token" });
    assert.match(typo.text, /<input [^>]*value="no-such-token"/, "what was typed is kept to correct it");
    const json = await h.http.post(VERIFY).type("form").set("Accept", "application/json").send({ uuid: "no-such-token" });
    assert.equal(json.status, 404);
    assert.equal(json.body.error, "TOKEN_UNKNOWN", "JSON clients keep their answer");
    assert.deepEqual(await storeSnapshot(h), before);
  });
});

test("GET verify/:token shows a confirm page naming the account and changes nothing", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "Quinn");
    const before = await storeSnapshot(h);
    for (let i = 0; i < 2; i++) {
      const page = await h.http.get(`${VERIFY}${token}`);
      assert.equal(page.status, 200);
      assertPageHeaders(page);
      assert.match(page.text, /<strong id="username">quinn<\/strong>/);
      assert.match(page.text, new RegExp(`<form method="post" action="/register_account/verify/${token}">`));
      assert.equal((page.text.match(/<button/g) ?? []).length, 1, "one button");
    }
    assert.deepEqual(await h.ctx.store.listAccounts(), []);
    assert.deepEqual(await storeSnapshot(h), before, "mail scanners prefetching the link change nothing");

    const done = await h.http.post(`${VERIFY}${token}`);
    assert.equal(done.status, 200);
    assert.match(done.text, /Welcome, quinn!/);
    assert.deepEqual(await accountNames(h), ["quinn"]);
  });
});

test("HEAD verify/:token changes nothing either", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "rita");
    const res = await h.http.head(`${VERIFY}${token}`);
    assert.equal(res.status, 200);
    assert.deepEqual(await h.ctx.store.listAccounts(), []);
  });
});

test("POST verify/:token creates the account and answers {username} to JSON clients", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "Sam");
    const res = await h.http.post(`${VERIFY}${token}`).set("Accept", "application/json");
    assert.equal(res.status, 200);
    assert.match(String(res.headers["content-type"]), /^application\/json/);
    assert.equal(res.body.username, "sam");
    const accounts = await h.ctx.store.listAccounts();
    assert.deepEqual(accounts.map((a) => [a.username, a.hasMail]), [["sam", true]]);
    assert.deepEqual(await h.ctx.store.listPending(h.clock.now()), []);
    assert.ok(h.logs.lines.some((l) => l["msg"] === "user-registered" && l["username"] === "sam"), "user-registered is logged");
  });
});

test("POST verify/:token shows the success page to browsers", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "tess");
    const res = await h.http.post(`${VERIFY}${token}`).set("Accept", "text/html");
    assert.equal(res.status, 200);
    assertPageHeaders(res);
    assert.match(res.text, /Welcome, tess!/);
    assert.match(res.text, /<strong id="username">tess<\/strong>/);
    assert.match(res.text, /is now active/);
  });
});

test("a second verify of the same token shows the success page (already active), not an error", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "uma");
    assert.equal((await h.http.post(`${VERIFY}${token}`)).status, 200);
    const again = await h.http.post(`${VERIFY}${token}`);
    assert.equal(again.status, 200);
    assertPageHeaders(again);
    assert.match(again.text, /Already active/);
    assert.match(again.text, /<strong id="username">uma<\/strong>/);
    assert.match(again.text, /is already active/);
    const json = await h.http.post(VERIFY).type("form").set("Accept", "application/json").send({ uuid: token });
    assert.equal(json.status, 200);
    assert.deepEqual(json.body, { username: "uma", alreadyActive: true });
    const link = await h.http.get(`${VERIFY}${token}`);
    assert.equal(link.status, 200);
    assert.match(link.text, /Already active/);
    assert.deepEqual(await accountNames(h), ["uma"]);
  });
});

test("concurrent completions of one token create one account; every answer is success", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "vera");
    const results = await Promise.all(
      Array.from({ length: 10 }, () => h.http.post(`${VERIFY}${token}`).set("Accept", "application/json")),
    );
    assert.deepEqual(results.map((r) => r.status), Array(10).fill(200));
    assert.equal(results.filter((r) => r.body.alreadyActive === false).length, 1);
    assert.deepEqual(await accountNames(h), ["vera"]);
  });
});

test("an unknown token gets the 404 failure page, by GET and by POST", async () => {
  await withHarness({}, async (h) => {
    for (const req of [h.http.get(`${VERIFY}unknown-token`), h.http.post(`${VERIFY}unknown-token`)]) {
      const res = await req;
      assert.equal(res.status, 404);
      assertPageHeaders(res);
      assert.match(res.text, /We could not verify this account/);
      assert.match(res.text, /href="\/register_account\/verify\/"/);
    }
    const json = await h.http.post(`${VERIFY}unknown-token`).set("Accept", "application/json");
    assert.equal(json.status, 404);
    assert.equal(json.body.error, "TOKEN_UNKNOWN");
  });
});

test("an expired token gets 404 and creates nothing", async () => {
  await withHarness({ register: { pendingTtlSeconds: 300 } }, async (h) => {
    const token = await register(h, "walt");
    h.clock.advance(300_000);
    const page = await h.http.get(`${VERIFY}${token}`);
    assert.equal(page.status, 404);
    assert.match(page.text, /We could not verify this account/);
    assert.equal((await h.http.post(`${VERIFY}${token}`)).status, 404);
    assert.equal((await h.http.post(VERIFY).type("form").send({ uuid: token })).status, 404);
    assert.deepEqual(await h.ctx.store.listAccounts(), []);
  });
});

test("a token completed just before expiry is not undone by time passing", async () => {
  await withHarness({ register: { pendingTtlSeconds: 300 } }, async (h) => {
    const token = await register(h, "xena");
    h.clock.advance(299_999);
    assert.equal((await h.http.post(`${VERIFY}${token}`)).status, 200);
    h.clock.advance(3_600_000);
    assert.deepEqual(await accountNames(h), ["xena"]);
  });
});

test("pages escape what they show: a username with = and ` is HTML-escaped, and a token in the path is not reflected", async () => {
  await withHarness({}, async (h) => {
    // Nodeprep keeps <>&"' out of usernames, but Handlebars also escapes = and `, which it allows.
    const token = await register(h, "a=b`c");
    const page = await h.http.get(`${VERIFY}${token}`);
    assert.equal(page.status, 200);
    assert.ok(page.text.includes("a&#x3D;b&#x60;c"), page.text);
    assert.ok(!page.text.includes("a=b`c"), "!page.text.includes(\"a=b`c\")");

    const hostile = encodeURIComponent(`"><script>alert(1)</script>`);
    const res = await h.http.get(`${VERIFY}${hostile}`);
    assert.equal(res.status, 404);
    assertPageHeaders(res);
    assert.doesNotMatch(res.text, /<script>/);
  });
});

test("every verify page sends Content-Security-Policy, nosniff and no-referrer", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "yann");
    const pages = [
      await h.http.get(VERIFY),
      await h.http.get(`${VERIFY}${token}`),
      await h.http.get(`${VERIFY}nope`),
      await h.http.post(`${VERIFY}${token}`),
      await h.http.post(`${VERIFY}${token}`),
      await h.http.post(VERIFY).type("form").send({ uuid: "nope" }),
    ];
    for (const res of pages) {
      assertPageHeaders(res);
      assert.equal(res.headers["cache-control"], "no-store");
    }
  });
});

test("the verify mail written by the outbox contains publicUrl + basePath + verify/ + token", async () => {
  await withHarness({}, async (h) => {
    const token = await register(h, "Zoe", "zoe@example.org");
    await h.outbox.drain();
    const dir = join(h.dir, "mail");
    const files = readdirSync(dir).filter((f) => f.endsWith(".eml"));
    assert.equal(files.length, 1);
    const mail = await simpleParser(readFileSync(join(dir, files[0]!)));
    const link = `${h.config.publicUrl}${h.config.register.basePath}verify/${token}`;
    assert.equal(link, `http://gatehouse.test/register_account/verify/${token}`);
    assert.ok(mail.text?.includes(link), mail.text);
    assert.ok(typeof mail.html === "string" && mail.html.includes(`href="${link}"`), String(mail.html));
    assert.equal(mail.to && !Array.isArray(mail.to) ? mail.to.text : "", "zoe@example.org");
    assert.ok(mail.text?.includes("zoe"), "mail.text?.includes(\"zoe\")");
    assert.equal(await h.ctx.store.outboxDepth(), 0);

    // The mailed link is the one the confirm page answers.
    const page = await h.http.get(new URL(link).pathname);
    assert.equal(page.status, 200);
    assert.match(page.text, /<strong id="username">zoe<\/strong>/);
  });
});

test("with register.sendMail false no mail is queued, and the returned token still verifies", async () => {
  await withHarness({ register: { sendMail: false } }, async (h) => {
    const token = await register(h, "abel");
    assert.equal(await h.ctx.store.outboxDepth(), 0);
    const res = await h.http.post(`${VERIFY}${token}`).set("Accept", "application/json");
    assert.equal(res.body.username, "abel");
  });
});
