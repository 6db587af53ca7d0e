import { test } from "node:test";
import assert from "node:assert/strict";
import { simpleParser, type AddressObject } from "mailparser";
import { runCli } from "../../src/cli/index.ts";
import { registration } from "../helpers/harness.ts";
import { captureIo, countLogs, postRegistrationTo, waitFor, withServiceDir, type TestService } from "../helpers/service.ts";
import type { SmtpPort } from "../helpers/smtp.ts";

const PUBLIC_URL = "http://gatehouse.test";
const BASE_PATH = "/register_account/";

function addresses(value: AddressObject | AddressObject[] | undefined): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value];
  return list.flatMap((a) => a.value.map((v) => v.address ?? ""));
}

async function mailStatusOf(svc: TestService, username: string): Promise<string | undefined> {
  const pending = await svc.service.ctx.store.listPending(Date.now());
  return pending.find((p) => p.username === username)?.mailStatus;
}

test("the verification mail goes out over SMTP and its link creates the account", async () => {
  await withServiceDir({}, async ({ cfg, start, smtp }) => {
    const sink = smtp.sink;
    const svc = await start();
    const fields = registration({ username: "Dana", mail: "dana.e2e@example.org" });

    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;

    const [received] = await sink.waitForMail(1);
    assert.ok(received, "received");
    assert.deepEqual(received.to, ["dana.e2e@example.org"]);
    assert.equal(received.from, "noreply@gatehouse.test");

    const mail = await simpleParser(received.raw);
    assert.deepEqual(addresses(mail.to), ["dana.e2e@example.org"]);
    assert.deepEqual(addresses(mail.from), ["noreply@gatehouse.test"]);
    assert.equal(mail.subject, "Confirm your new account at gatehouse.test");
    assert.ok(mail.text, "the mail has a text part");
    assert.ok(typeof mail.html === "string" && mail.html.length > 0, "the mail has an html part");
    assert.match(mail.text, /Hello dana,/);

    // The link stands on a line of its own, so mail clients do not glue punctuation to it.
    const link = /^https?:\/\/\S+$/m.exec(mail.text)?.[0];
    assert.ok(link, "the text part carries the link");
    assert.ok(link.startsWith(`${PUBLIC_URL}${BASE_PATH}verify/`), link);
    assert.equal(link, `${PUBLIC_URL}${BASE_PATH}verify/${encodeURIComponent(token)}`);
    assert.ok(mail.html.includes(`href="${link}"`), "the html part links to the same address");

    await waitFor(async () => (await mailStatusOf(svc, "dana")) === "sent", { what: "the outbox to mark the mail sent" });

    // Follow the link on the running service: the public URL is only where the site is reachable from outside.
    const path = link.slice(PUBLIC_URL.length);
    const confirm = await fetch(`${svc.service.url}${path}`);
    const confirmPage = await confirm.text();
    assert.equal(confirm.status, 200);
    assert.match(confirmPage, /<strong id="username">dana<\/strong>/);
    assert.equal(await mailStatusOf(svc, "dana"), "sent", "the confirm page changes nothing");

    const done = await fetch(`${svc.service.url}${path}`, { method: "POST" });
    const donePage = await done.text();
    assert.equal(done.status, 200);
    assert.match(donePage, /Welcome, dana!/);

    const cli = captureIo();
    assert.equal(await runCli(["users", "list", "--config", cfg.configPath], cli.io), 0, cli.err.join("\n"));
    assert.equal(cli.out.length, 1, cli.out.join("\n"));
    const [name, created, mailColumn] = cli.out[0]!.split("\t");
    assert.equal(name, "dana");
    assert.match(created!, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.equal(mailColumn, "mail");

    // The SMTP transport never puts the link, token or address in the log.
    const logText = svc.logs.text();
    assert.ok(countLogs(svc.logs, "mail sent") === 1, logText);
    for (const secret of [token, fields.mail, fields.password]) assert.ok(!logText.includes(secret), `log leaks ${secret}`);
  }, { smtp: true });
});

test("the verification mail is written in the registration's language, names the site and greets by name", async () => {
  const site = { name: "Example Chat", supportUrl: "mailto:help@example.org" };
  await withServiceDir({ languages: ["en", "de", "fr", "es"], site, mail: { from: "Example Chat <hello@example.org>" } }, async ({ start, smtp }) => {
    const sink = smtp.sink;
    const svc = await start();
    const cases: [string | undefined, string, RegExp, string][] = [
      ["de-AT", "Bestätigen Sie Ihr neues Konto bei Example Chat", /^Hallo gerd,$/m, "de"],
      ["fr", "Confirmez votre nouveau compte sur Example Chat", /^Bonjour fred,$/m, "fr"],
      ["es_ES", "Confirme su nueva cuenta en Example Chat", /^Hola, elena:$/m, "es"],
      ["it", "Confirm your new account at Example Chat", /^Hello ivo,$/m, "en"],
      [undefined, "Confirm your new account at Example Chat", /^Hello nina,$/m, "en"],
    ];
    const names = ["gerd", "fred", "elena", "ivo", "nina"];
    for (const [i, [lang]] of cases.entries()) {
      const fields = { ...registration({ username: names[i], mail: `${names[i]}@example.org` }), ...(lang ? { lang } : {}) };
      const res = await postRegistrationTo(svc.service.url, fields);
      assert.equal(res.status, 200, res.text);
    }
    const received = await sink.waitForMail(cases.length);
    const stored = Object.fromEntries((await svc.service.ctx.store.listPending(Date.now())).map((p) => [p.username, p.lang]));
    for (const [i, [, subject, greeting, lang]] of cases.entries()) {
      const raw = received.find((m) => m.to.includes(`${names[i]}@example.org`));
      assert.ok(raw, names[i]);
      const mail = await simpleParser(raw.raw);
      assert.equal(mail.subject, subject, names[i]);
      assert.deepEqual(addresses(mail.from), ["hello@example.org"], "the sender is mail.from");
      assert.equal((mail.from as AddressObject).value[0]?.name, "Example Chat");
      assert.match(mail.text ?? "", greeting);
      assert.match(mail.text ?? "", /Example Chat/, "the text names the site");
      assert.doesNotMatch((mail.text ?? "").split(/\n\s*\n/).slice(0, 2).join(" "), /https?:/, "the greeting names the site, not a URL");
      const html = String(mail.html);
      assert.match(html, new RegExp(`<html lang="${lang}">`));
      assert.match(html, /<head>[\s\S]*<meta name="viewport" content="width=device-width, initial-scale=1">[\s\S]*<\/head>/);
      const link = /^https?:\/\/\S+\/verify\/\S+$/m.exec(mail.text ?? "")?.[0];
      assert.ok(link, "the text part carries the link");
      assert.ok(html.includes(`<a href="${link}" id="link"`) && html.includes(`>${link}</a>`), "the HTML part shows the link as text too");
      assert.equal(stored[names[i]!], lang, "the language is stored with the pending registration");
    }
  }, { smtp: true });
});

test("a 5xx from the SMTP server marks the mail failed after one attempt", async () => {
  const refuse = { refuseRcpt: { code: 550, message: "5.1.1 mailbox unavailable" } };
  const transport = (smtp: SmtpPort) => ({ mail: { transport: { host: "127.0.0.1", port: smtp.port, secure: false, ignoreTLS: true } } });
  await withServiceDir(transport, async ({ start, smtp }) => {
    const sink = smtp.sink;
    const svc = await start();
    const fields = registration({ username: "erin", mail: "erin.e2e@example.org" });

    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);

    await waitFor(async () => (await mailStatusOf(svc, "erin")) === "failed", { what: "the mail to be marked failed" });
    assert.deepEqual(sink.rcptAttempts, ["erin.e2e@example.org"]);
    assert.equal(sink.received.length, 0);
    const failures = svc.logs.lines.filter((l) => l["msg"] === "outbox item failed for good");
    assert.equal(failures.length, 1);
    assert.equal(failures[0]!["attempts"], 1);
    assert.match(String(failures[0]!["reason"]), /550/);
    assert.equal(countLogs(svc.logs, "outbox send failed, will retry"), 0);
    assert.equal(await svc.service.ctx.store.outboxDepth(), 0, "nothing is left queued");
  }, { smtp: refuse });
});

test("mail queued while the SMTP server is down is retried and arrives exactly once", async () => {
  await withServiceDir({}, async ({ start, smtp }) => {
    const svc = await start();
    const fields = registration({ username: "frank", mail: "frank.e2e@example.org" });

    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);

    const retry = await waitFor(() => svc.logs.lines.find((l) => l["msg"] === "outbox send failed, will retry"), {
      what: "the first attempt to fail",
    });
    assert.equal(retry["attempts"], 1);
    assert.equal(retry["retryInMs"], 2000);
    assert.equal(await mailStatusOf(svc, "frank"), "queued");

    const sink = await smtp.start();
    await sink.waitForMail(1, 6000);
    await waitFor(async () => (await mailStatusOf(svc, "frank")) === "sent", { what: "the outbox to mark the mail sent" });
    // A few more poll intervals (100 ms each) must not send it again.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(sink.received.length, 1);
    assert.deepEqual(sink.received[0]!.to, ["frank.e2e@example.org"]);
    const mail = await simpleParser(sink.received[0]!.raw);
    assert.ok(mail.text?.includes(`${PUBLIC_URL}${BASE_PATH}verify/${res.text}`), "mail.text?.includes(`${PUBLIC_URL}${BASE_PATH}verify/${res.text}`)");
    assert.equal(countLogs(svc.logs, "mail sent"), 1);
  }, { smtp: "down" });
});
