import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import { configKeys, type Config } from "../../src/config.ts";
import { encode, FakeClock, registration, testConfig, type RegistrationFields } from "../helpers/harness.ts";
import { cli } from "../helpers/invites.ts";
import { countLogs, editConfig, freePort, withServiceDir, type ConfigDir, type TestService } from "../helpers/service.ts";
import { verifySignature } from "../helpers/signature.ts";
import { solveChallenge, type Challenge } from "altcha-lib";
import { deriveKey } from "altcha-lib/algorithms/sha";

/** A service as a live-key case sees it: the real startService, its config dir, its clock. */
interface Running {
  svc: TestService;
  cfg: ConfigDir;
  clock: FakeClock;
  url: string;
  hooks: Receiver;
}

interface Answer {
  status: number;
  /** The refusal code, or "ok". */
  code: string;
  /** The verification token of an accepted registration. */
  token: string;
}

/** POSTs a registration as mod_register_json does, asking for JSON refusals. */
async function post(s: Running, fields: Partial<RegistrationFields> = {}, headers: Record<string, string> = {}, basePath = "/register_account/"): Promise<Answer> {
  const res = await fetch(`${s.url}${basePath}`, {
    method: "POST",
    headers: { "content-type": "application/encoded", accept: "application/json", ...headers },
    body: encode(registration(fields)),
  });
  const text = await res.text();
  if (res.status === 200) return { status: 200, code: "ok", token: text };
  return { status: res.status, code: (JSON.parse(text) as { error: string }).error, token: "" };
}

async function verify(s: Running, token: string, basePath = "/register_account/"): Promise<number> {
  const res = await fetch(`${s.url}${basePath}verify/${encodeURIComponent(token)}`, { method: "POST", headers: { accept: "application/json" } });
  await res.body?.cancel();
  return res.status;
}

const MODERATOR = "moderator@example.org";

/** Completes a registration by its token, as a JSON client: what the answer says. */
async function verifyAnswer(s: Running, token: string): Promise<{ username?: string; awaitingApproval?: boolean }> {
  const res = await fetch(`${s.url}/register_account/verify/${encodeURIComponent(token)}`, { method: "POST", headers: { accept: "application/json" } });
  assert.equal(res.status, 200);
  return (await res.json()) as { username?: string; awaitingApproval?: boolean };
}

function emlFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".eml")).map((f) => join(dir, f)) : [];
}

const MAIL_DIRS = ["mail", "mail-2"] as const;

/** Registers, lets the outbox send, and says which directory the one new mail landed in and what it says. */
async function registerAndReadMail(s: Running, fields: Partial<RegistrationFields> = {}, basePath?: string): Promise<{ dir: string; from: string; link: string } | null> {
  const before = new Set(MAIL_DIRS.flatMap((d) => emlFiles(join(s.cfg.dir, d))));
  assert.equal((await post(s, fields, {}, basePath)).code, "ok");
  await s.svc.service.outbox.drain();
  const added = MAIL_DIRS.flatMap((d) => emlFiles(join(s.cfg.dir, d)).filter((f) => !before.has(f)).map((file) => ({ d, file })));
  if (added.length === 0) return null;
  assert.equal(added.length, 1);
  const mail = await simpleParser(readFileSync(added[0]!.file));
  const link = /(\S+\/verify\/)\S+/.exec(mail.text ?? "")?.[1] ?? "";
  return { dir: added[0]!.d, from: mail.from?.text ?? "", link };
}

/** Two registrations from one address (or from two addresses given), as refusal codes. */
async function twoFrom(s: Running, first: string, second = first): Promise<string[]> {
  return [(await post(s, { ip: first })).code, (await post(s, { ip: second })).code];
}

let addresses = 0;
/** A documentation address not used before in this file, so throttle counts start from nothing. */
function freshIp(prefix = "192.0.2."): string {
  addresses += 1;
  return `${prefix}${addresses}`;
}

async function issueInvite(s: Running): Promise<{ id: string; lifetimeSeconds: number }> {
  const made = await cli({ configPath: s.cfg.configPath }, "keys", "create", "reload test key");
  assert.equal(made.code, 0, made.err.join("\n"));
  const res = await fetch(`${s.url}/api/invite`, { method: "POST", headers: { authorization: `Bearer ${made.out[0]}` } });
  const body = (await res.json()) as { id: string; issued_at: string; expires_at: string };
  assert.equal(res.status, 200);
  return { id: body.id, lifetimeSeconds: (Date.parse(body.expires_at) - Date.parse(body.issued_at)) / 1000 };
}

interface Delivery {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  base: string;
  deliveries: Delivery[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      deliveries.push({ path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    deliveries,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const HOOK_SECRET_1 = "first-webhook-secret-0123";
const HOOK_SECRET_2 = "second-webhook-secret-4567";

type Overrides = Parameters<typeof testConfig>[1];

/** One or more live keys: what a user sees before a reload changes them, and after. */
interface LiveCase {
  keys: string[];
  initial?: Overrides;
  /** `dir` is the service's config directory. */
  edit: (c: Config, dir: string) => void;
  observe: (s: Running) => Promise<unknown>;
  before: unknown;
  after: unknown;
}

let provisionNames = 0;

const LIVE: LiveCase[] = [
  {
    keys: ["publicUrl"],
    edit: (c) => (c.publicUrl = "https://signup.example.org"),
    observe: async (s) => {
      const { id } = await issueInvite(s);
      const page = await (await fetch(`${s.url}/invite/${id}`)).text();
      return { site: /You are invited to ([^<]+)</.exec(page)?.[1], link: (await registerAndReadMail(s))?.link };
    },
    before: { site: "gatehouse.test", link: "http://gatehouse.test/register_account/verify/" },
    after: { site: "signup.example.org", link: "https://signup.example.org/register_account/verify/" },
  },
  {
    keys: ["trustProxy"],
    initial: { trustProxy: false, register: { secure: true } },
    edit: (c) => (c.trustProxy = true),
    observe: async (s) => (await post(s, {}, { "x-forwarded-proto": "https" })).code,
    before: "HTTPS_REQUIRED",
    after: "ok",
  },
  {
    keys: ["register.secure"],
    edit: (c) => (c.register.secure = true),
    observe: async (s) => (await post(s)).code,
    before: "ok",
    after: "HTTPS_REQUIRED",
  },
  {
    keys: ["register.authTokens"],
    edit: (c) => (c.register.authTokens = ["a-new-auth-token-0123456789-abcdefghij"]),
    observe: async (s) => [(await post(s)).code, (await post(s, { auth_token: "a-new-auth-token-0123456789-abcdefghij" })).code],
    before: ["ok", "AUTH_TOKEN_INVALID"],
    after: ["AUTH_TOKEN_INVALID", "ok"],
  },
  {
    keys: ["register.throttleSeconds"],
    edit: (c) => (c.register.throttleSeconds = 3600),
    observe: (s) => twoFrom(s, freshIp()),
    before: ["ok", "ok"],
    after: ["ok", "THROTTLED"],
  },
  {
    keys: ["register.blacklist"],
    edit: (c) => (c.register.blacklist = ["203.0.113.0/24"]),
    observe: async (s) => (await post(s, { ip: freshIp("203.0.113.") })).code,
    before: "ok",
    after: "IP_BLACKLISTED",
  },
  {
    keys: ["register.whitelist"],
    initial: { register: { throttleSeconds: 3600 } },
    edit: (c) => (c.register.whitelist = ["192.0.2.0/24"]),
    observe: (s) => twoFrom(s, freshIp()),
    before: ["ok", "THROTTLED"],
    after: ["ok", "ok"],
  },
  {
    keys: ["register.filteredMails"],
    edit: (c) => (c.register.filteredMails = [".*@banned\\.test"]),
    observe: async (s) => (await post(s, { mail: `x${freshIp("")}@banned.test` })).code,
    before: "ok",
    after: "MAIL_FILTERED",
  },
  {
    keys: ["register.pendingTtlSeconds"],
    edit: (c) => (c.register.pendingTtlSeconds = 3600),
    observe: async (s) => {
      const { token } = await post(s);
      s.clock.advance(2 * 3600 * 1000);
      return verify(s, token);
    },
    before: 200,
    after: 404,
  },
  {
    keys: ["register.sendMail"],
    edit: (c) => (c.register.sendMail = false),
    observe: async (s) => (await registerAndReadMail(s)) !== null,
    before: true,
    after: false,
  },
  {
    keys: ["register.blockDisposable"],
    edit: (c) => (c.register.blockDisposable = true),
    observe: async (s) => (await post(s, { mail: `x${freshIp("")}@mailinator.com` })).code,
    before: "ok",
    after: "MAIL_DISPOSABLE",
  },
  {
    keys: ["register.ipv6Prefix"],
    initial: { register: { throttleSeconds: 3600 } },
    edit: (c) => (c.register.ipv6Prefix = 128),
    // Two addresses of one /64: one subscriber while the prefix is 64, two once it is 128.
    observe: (s) => twoFrom(s, freshIp("2001:db8:1::"), freshIp("2001:db8:1::")),
    before: ["ok", "THROTTLED"],
    after: ["ok", "ok"],
  },
  {
    keys: ["mail.from"],
    edit: (c) => (c.mail.from = "Signups <signups@example.org>"),
    observe: async (s) => (await registerAndReadMail(s))?.from,
    before: '"gatehouse" <noreply@gatehouse.test>',
    after: '"Signups" <signups@example.org>',
  },
  {
    keys: ["mail.transport"],
    edit: (c, dir) => (c.mail.transport = `dir:${join(dir, "mail-2")}`),
    observe: async (s) => (await registerAndReadMail(s))?.dir,
    before: "mail",
    after: "mail-2",
  },
  {
    keys: ["invites.ttlSeconds"],
    edit: (c) => (c.invites = { ...c.invites, ttlSeconds: 3600 }),
    observe: async (s) => (await issueInvite(s)).lifetimeSeconds,
    before: 604800,
    after: 3600,
  },
  {
    keys: ["accounts.minPasswordLength"],
    edit: (c) => (c.accounts = { ...c.accounts, minPasswordLength: 12 }),
    observe: async (s) => (await post(s, { password: "ten chars!" })).code,
    before: "ok",
    after: "PASSWORD_TOO_SHORT",
  },
  {
    keys: ["accounts.reservedUsernames"],
    edit: (c) => (c.accounts = { ...c.accounts, reservedUsernames: ["helpdesk"] }),
    observe: async (s) => [(await post(s, { username: "helpdesk" })).code, (await post(s, { username: "webmaster" })).code],
    before: ["ok", "USERNAME_RESERVED"],
    after: ["USERNAME_RESERVED", "ok"],
  },
  {
    // A registration's name is asked about on the account servers in force (DESIGN §9).
    keys: ["accounts.provision"],
    edit: (c) => (c.accounts = { ...c.accounts, provision: [{ type: "http", url: "RECEIVER/accounts", checkUrl: "RECEIVER/check", secret: HOOK_SECRET_1 }] }),
    observe: async (s) => {
      const answer = await post(s, { username: `prov${++provisionNames}` });
      return [answer.code, s.hooks.deliveries.filter((d) => d.path === "/check").length];
    },
    before: ["ok", 0],
    after: ["ok", 1],
  },
  {
    // Completing waits that long for an account server that cannot be reached (port 1 refuses).
    keys: ["accounts.provisionWaitMs"],
    initial: { accounts: { provisionWaitMs: 0, provision: [{ type: "http", url: "http://127.0.0.1:1/accounts", secret: HOOK_SECRET_1 }] } },
    edit: (c) => (c.accounts = { ...c.accounts, provisionWaitMs: 700 }),
    observe: async (s) => {
      const { token } = await post(s, { username: `wait${++provisionNames}` });
      const started = performance.now();
      assert.equal(await verify(s, token), 200);
      return performance.now() - started >= 600;
    },
    before: false,
    after: true,
  },
  {
    keys: ["events.webhook.url", "events.webhook.secret"],
    edit: (c) => (c.events = { webhook: { url: "RECEIVER/second", secret: HOOK_SECRET_2 } }),
    observe: async (s) => {
      const { token } = await post(s);
      assert.equal(await verify(s, token), 200);
      await s.svc.service.outbox.drain();
      const last = s.hooks.deliveries[s.hooks.deliveries.length - 1];
      if (!last) return null;
      const signature = last.headers["x-gatehouse-signature"] as string | undefined;
      const signedWith = [HOOK_SECRET_1, HOOK_SECRET_2].findIndex((secret) => verifySignature(secret, signature, last.body, s.clock.now()) === "ok");
      return { path: last.path, signedWith: signedWith + 1 };
    },
    initial: { events: { webhook: { url: "RECEIVER/first", secret: HOOK_SECRET_1 } } },
    before: { path: "/first", signedWith: 1 },
    after: { path: "/second", signedWith: 2 },
  },
  {
    // What the pages show (DESIGN §10): a reload rebuilds the templates with the new branding.
    keys: ["site.name", "site.logoUrl", "site.accentColor", "site.homeUrl", "site.signInUrl", "site.supportUrl"],
    edit: (c) => (c.site = {
      name: "Example Chat",
      logoUrl: "https://cdn.example.org/logo.png",
      accentColor: "#aa3300",
      homeUrl: "https://example.org/",
      signInUrl: "https://example.org/login",
      supportUrl: "mailto:help@example.org",
    }),
    observe: async (s) => {
      const { id } = await issueInvite(s);
      const res = await fetch(`${s.url}/invite/${id}`);
      const page = await res.text();
      return {
        site: /id="site-name"[^>]*>([^<]+)</.exec(page)?.[1],
        logo: /<img id="site-logo" src="([^"]+)"/.exec(page)?.[1] ?? null,
        accent: /--accent: (#[0-9a-f]+)/.exec(page)?.[1],
        home: /<a class="site" id="site-name" href="([^"]+)"/.exec(page)?.[1] ?? null,
        support: /id="support" href="([^"]+)"/.exec(page)?.[1] ?? null,
        csp: /img-src [^;]*/.exec(res.headers.get("content-security-policy") ?? "")?.[0],
      };
    },
    before: { site: "gatehouse.test", logo: null, accent: "#2453a6", home: null, support: null, csp: "img-src 'self' data:" },
    after: {
      site: "Example Chat", logo: "https://cdn.example.org/logo.png", accent: "#aa3300", home: "https://example.org/",
      support: "mailto:help@example.org", csp: "img-src 'self' data: https://cdn.example.org",
    },
  },
  {
    // A verified registration waits for a moderator instead of becoming an account (DESIGN §11).
    keys: ["register.approval"],
    edit: (c) => (c.register.approval = "manual"),
    observe: async (s) => (await verifyAnswer(s, (await post(s)).token)).awaitingApproval === true,
    before: false,
    after: true,
  },
  {
    keys: ["register.moderators"],
    initial: { register: { approval: "manual" } },
    edit: (c) => (c.register.moderators = [MODERATOR]),
    // How many mails a newly waiting registration sends the moderator.
    observe: async (s) => {
      const before = new Set(emlFiles(join(s.cfg.dir, "mail")));
      await verifyAnswer(s, (await post(s)).token);
      await s.svc.service.outbox.drain();
      const added = emlFiles(join(s.cfg.dir, "mail")).filter((f) => !before.has(f));
      const to = await Promise.all(added.map(async (f) => (await simpleParser(readFileSync(f))).to));
      return to.filter((t) => JSON.stringify(t).includes(MODERATOR)).length;
    },
    before: 0,
    after: 1,
  },
  {
    keys: ["register.approvalTtlSeconds"],
    initial: { register: { approval: "manual" } },
    edit: (c) => (c.register.approvalTtlSeconds = 3600),
    // How long a registration verified now waits, as `pending list` shows it.
    observe: async (s) => {
      const { username } = registration();
      await verifyAnswer(s, (await post(s, { username })).token);
      const listed = await cli({ configPath: s.cfg.configPath }, "pending", "list");
      const row = listed.out.map((line) => line.split("\t")).find((cells) => cells[0] === username);
      assert.ok(row, listed.out.join("\n"));
      return (Date.parse(row[3]!) - Date.parse(row[2]!)) / 1000;
    },
    before: 1209600,
    after: 3600,
  },
  {
    keys: ["invites.requireApproval"],
    edit: (c) => (c.invites = { ...c.invites, requireApproval: true }),
    // An invite accepted over the API: logged in (204), or waiting for a moderator (202).
    observe: async (s) => {
      const { id } = await issueInvite(s);
      const res = await fetch(`${s.url}/api/invite/${encodeURIComponent(id)}`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ name: `invited${++inviters}`, password: "a long enough password" }),
      });
      await res.body?.cancel();
      return res.status;
    },
    before: 204,
    after: 202,
  },
  {
    // Invites a logged-in account may make (DESIGN §11): a new account invites freely, then not at all.
    keys: ["invites.perUser.max", "invites.perUser.perDays", "invites.perUser.minAccountAgeDays", "invites.perUser.exempt"],
    edit: (c) => (c.invites = { ...c.invites, perUser: { max: 0, perDays: 30, minAccountAgeDays: 0, exempt: [] } }),
    observe: async (s) => {
      const { id } = await issueInvite(s);
      const name = `inviter${++inviters}`;
      const accepted = await fetch(`${s.url}/api/invite/${encodeURIComponent(id)}`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ name, password: "a long enough password" }),
      });
      assert.equal(accepted.status, 204, await accepted.text());
      const cookie = accepted.headers.get("set-cookie")?.split(";")[0] ?? "";
      const made = await fetch(`${s.url}/api/invite`, { method: "POST", headers: { cookie, accept: "application/json" } });
      return made.status;
    },
    before: 200,
    after: 429,
  },
  {
    keys: ["templates.dir"],
    edit: (c, dir) => {
      mkdirSync(join(dir, "own", "pages"), { recursive: true });
      writeFileSync(join(dir, "own", "pages", "verify-form.hbs"), `{{#> layout title="x"}}<p id="own">{{t "pages.verifyForm.intro"}}</p>{{/layout}}`);
      c.templates = { dir: join(dir, "own") };
    },
    observe: async (s) => {
      const page = await (await fetch(`${s.url}/register_account/verify/`)).text();
      return { own: page.includes(`<p id="own">`), form: page.includes("<form") };
    },
    before: { own: false, form: true },
    after: { own: true, form: false },
  },
  {
    keys: ["languages"],
    edit: (c) => (c.languages = ["en", "de"]),
    observe: async (s) => {
      const page = await (await fetch(`${s.url}/register_account/verify/`, { headers: { "accept-language": "de-DE,de;q=0.9" } })).text();
      return /<html lang="([^"]+)"/.exec(page)?.[1];
    },
    before: "en",
    after: "de",
  },
];

let inviters = 0;

/** Whether the verify form, as `ip` (with trustProxy) sees it, asks for a proof of work. */
async function asksForProofOfWork(s: Running, ip?: string): Promise<boolean> {
  const res = await fetch(`${s.url}/register_account/verify/`, { headers: ip ? { "x-forwarded-for": ip } : {} });
  return (await res.text()).includes("<altcha-widget");
}

/** A wrong code posted on the verify form: one submission of a public form, as "auto" counts them. */
async function postVerifyForm(s: Running, ip?: string): Promise<void> {
  const res = await fetch(`${s.url}/register_account/verify/`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...(ip ? { "x-forwarded-for": ip } : {}) },
    body: "uuid=not-a-real-code",
  });
  await res.body?.cancel();
}

LIVE.push(
  {
    keys: ["register.resendLimit"],
    initial: { register: { resendLimit: 0 } },
    edit: (c) => (c.register.resendLimit = 3),
    // Whether the first link still works after the resend form was used: a resend replaces it.
    observe: async (s) => {
      const fields = registration();
      const { token } = await post(s, fields);
      const res = await fetch(`${s.url}/register_account/verify/resend`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username: fields.username, mail: fields.mail }).toString(),
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      return verify(s, token);
    },
    before: 200,
    after: 404,
  },
  {
    keys: ["antibot.proofOfWork"],
    initial: { antibot: { proofOfWork: "off" } },
    edit: (c) => (c.antibot.proofOfWork = "always"),
    observe: (s) => asksForProofOfWork(s),
    before: false,
    after: true,
  },
  {
    keys: ["antibot.complexity"],
    initial: { antibot: { proofOfWork: "always", complexity: 1000 } },
    edit: (c) => (c.antibot.complexity = 20_000),
    // The counter a solver has to reach is drawn between half the complexity and the complexity.
    observe: async (s) => {
      const challenge = (await (await fetch(`${s.url}/_gatehouse/pow/challenge`)).json()) as Challenge;
      const solution = await solveChallenge({ challenge, deriveKey });
      return solution !== null && solution.counter > 1000;
    },
    before: false,
    after: true,
  },
  {
    keys: ["antibot.auto.perAddress", "antibot.auto.windowSeconds", "antibot.auto.holdSeconds"],
    initial: { antibot: { proofOfWork: "auto", auto: { perAddress: 50 } } },
    edit: (c) => {
      c.antibot.auto.perAddress = 2;
      c.antibot.auto.windowSeconds = 120;
      c.antibot.auto.holdSeconds = 600;
    },
    observe: async (s) => {
      for (let i = 0; i < 3; i++) await postVerifyForm(s);
      return asksForProofOfWork(s);
    },
    before: false,
    after: true,
  },
  {
    keys: ["antibot.auto.perForm"],
    initial: { trustProxy: true, antibot: { proofOfWork: "auto", auto: { perForm: 50 } } },
    edit: (c) => (c.antibot.auto.perForm = 2),
    // From three addresses, once each: only the count of the whole form can trip; a fourth address sees it.
    observe: async (s) => {
      for (let i = 0; i < 3; i++) await postVerifyForm(s, freshIp());
      return asksForProofOfWork(s, freshIp());
    },
    before: false,
    after: true,
  },
);

/** Puts the receiver's address where a case wrote RECEIVER. */
function withReceiver<T>(value: T, hooks: Receiver): T {
  return JSON.parse(JSON.stringify(value).replaceAll("RECEIVER", hooks.base)) as T;
}

test("every live key of the schema has a case below that changes it through a reload", () => {
  const live = configKeys().filter((key) => key.restart === null).map((key) => key.path.join("."));
  assert.deepEqual(LIVE.flatMap((c) => c.keys).sort(), live.sort());
});

for (const c of LIVE) {
  test(`a reload that changes ${c.keys.join(" and ")} takes effect at the next use, with no restart asked for`, async () => {
    const hooks = await startReceiver();
    try {
      await withServiceDir(withReceiver(c.initial ?? {}, hooks), async ({ cfg, start }) => {
        const clock = new FakeClock(Date.now());
        const svc = await start({ watchConfig: false, clock });
        const s: Running = { svc, cfg, clock, url: svc.service.url, hooks };
        assert.deepEqual(await c.observe(s), c.before, "before the reload");
        cfg.replace(withReceiver(editConfig(cfg.raw, (config) => c.edit(config, cfg.dir)), hooks));
        assert.equal(svc.service.reload(), true, svc.logs.text());
        assert.deepEqual(await c.observe(s), c.after, "after the reload");
        assert.equal(countLogs(svc.logs, "config changes that need a restart"), 0, svc.logs.text());
      });
    } finally {
      await hooks.close();
    }
  });
}

const NO_HOOKS: Receiver = { base: "", deliveries: [], close: async () => {} };

const RESTART_ONLY = ["listen", "storage", "redis", "secret", "register.basePath", "invites.apiPath", "metrics.enabled", "metrics.listen"];

test("the schema marks exactly these keys restart-only", () => {
  assert.deepEqual(configKeys().filter((key) => key.restart !== null).map((key) => key.path.join(".")), RESTART_ONLY);
});

test("a reload that changes every restart-only key logs each as needing a restart and keeps running on the old values", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start({ watchConfig: false });
    const s: Running = { svc, cfg, clock: new FakeClock(), url: svc.service.url, hooks: NO_HOOKS };
    const original = cfg.raw;
    const restartLogs = () => svc.logs.lines.filter((l) => String(l["msg"]).startsWith("config changes that need a restart"));
    const metricsPort = await freePort();
    const changed = editConfig(original, (c) => {
      c.listen.port = 1;
      c.storage = `sqlite:${join(cfg.dir, "other.db")}`;
      c.redis = "redis://127.0.0.1:9";
      c.secret = "a-secret-that-arrives-only-with-a-restart";
      c.register.basePath = "/signup/";
      c.invites = { ...c.invites, apiPath: "/other_invites_api" };
      c.metrics = { enabled: false, listen: { host: "127.0.0.1", port: metricsPort } };
      c.register.filteredMails = [".*@banned\\.test"];
    });
    cfg.replace(changed);
    assert.equal(svc.service.reload(), true, svc.logs.text());
    assert.equal(restartLogs().length, 1, svc.logs.text());
    assert.deepEqual(restartLogs()[0]!["keys"], RESTART_ONLY);
    assert.equal(restartLogs()[0]!["level"], 40);

    // The live change in the same file is applied...
    assert.equal((await post(s, { mail: "a@banned.test" })).code, "MAIL_FILTERED");
    // ...while registrations, their mailed links and verification stay on the mounted basePath.
    assert.equal((await post(s, {}, {}, "/signup/")).status, 404);
    const mail = await registerAndReadMail(s);
    assert.equal(mail?.link, "http://gatehouse.test/register_account/verify/");
    const { token } = await post(s);
    assert.equal(await verify(s, token), 200);
    assert.equal((await fetch(`${s.url}/other_invites_api`)).status, 404);
    assert.notEqual((await fetch(`${s.url}/invites_api`)).status, 404);
    assert.equal((await fetch(`${s.url}/metrics`)).status, 200, "metrics stay on the public listener");
    const running = svc.service.ctx.config;
    assert.equal(running.storage, original["storage"]);
    assert.equal(running.redis, undefined);
    assert.equal(running.secret, undefined);
    assert.deepEqual(running.metrics, { enabled: true });

    // A reload that changes nothing more says nothing more; nor does a file back at the running values.
    assert.equal(svc.service.reload(), true);
    assert.equal(restartLogs().length, 1);
    cfg.replace(editConfig(changed, (c) => (c.register.basePath = "/register_account/")));
    assert.equal(svc.service.reload(), true);
    assert.equal(restartLogs().length, 1, svc.logs.text());
    assert.equal(svc.service.ctx.config.register.basePath, "/register_account/");
    cfg.replace(original);
    assert.equal(svc.service.reload(), true);
    assert.equal(restartLogs().length, 1, svc.logs.text());
    assert.equal((await post(s, { mail: "b@banned.test" })).code, "ok");
  }));

test("after a restart the waiting value is in force", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    await start({ watchConfig: false });
    cfg.replace(editConfig(cfg.raw, (c) => (c.register.basePath = "/signup/")));
    const svc = await start({ watchConfig: false });
    const s: Running = { svc, cfg, clock: new FakeClock(), url: svc.service.url, hooks: NO_HOOKS };
    assert.equal((await post(s, {}, {}, "/register_account/")).status, 404);
    assert.equal((await registerAndReadMail(s, {}, "/signup/"))?.link, "http://gatehouse.test/signup/verify/");
  }));
