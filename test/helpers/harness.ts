import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type Koa from "koa";
import supertest from "supertest";
import { createApp } from "../../src/app.ts";
import { parseConfig, type Config } from "../../src/config.ts";
import { createContext, type AppContext, type Clock, type ContextOptions } from "../../src/context.ts";
import { createLogger } from "../../src/log.ts";
import { OutboxSender } from "../../src/mail/outbox.ts";
import { openStore } from "../../src/store/open.ts";
import { Lifetimes } from "./lifetimes.ts";
import { recordExchanges, recordIfAsked, type Exchange } from "./openapi.ts";
import { openSmtpPort, requireSmtp, type SmtpChoice, type SmtpPort } from "./smtp.ts";

export const AUTH_TOKEN = "test-auth-token-0123456789-abcdefghij";

/** A clock the test moves by hand. */
export class FakeClock implements Clock {
  constructor(public t = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** Collects every JSON log line, so tests can assert what is (and is never) logged. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
  text(): string {
    return this.raw.join("\n");
  }
}

// Optional objects (invites.perUser, …) are partial too: their defaults are the schema's to fill in.
type DeepPartial<T> = {
  [K in keyof T]?: NonNullable<T[K]> extends object ? (NonNullable<T[K]> extends unknown[] ? T[K] : DeepPartial<NonNullable<T[K]>>) : T[K];
};

/** A config for tests: a fresh directory, a real SQLite file, mail to files, plain HTTP allowed. */
export function testConfig(dir: string, overrides: DeepPartial<Config> = {}): Record<string, unknown> {
  const base = {
    listen: { host: "127.0.0.1", port: 0 },
    publicUrl: "http://gatehouse.test",
    storage: `sqlite:${join(dir, "gatehouse.db")}`,
    register: { secure: false, authTokens: [AUTH_TOKEN] },
    mail: { from: "gatehouse <noreply@gatehouse.test>", transport: `dir:${join(dir, "mail")}` },
  };
  const merge = (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = { ...a };
    for (const [k, v] of Object.entries(b)) {
      out[k] = v && typeof v === "object" && !Array.isArray(v) && a[k] && typeof a[k] === "object"
        ? merge(a[k] as Record<string, unknown>, v as Record<string, unknown>)
        : v;
    }
    return out;
  };
  return merge(base, overrides as Record<string, unknown>);
}

export interface Harness {
  dir: string;
  configPath: string;
  config: Config;
  ctx: AppContext;
  app: Koa;
  http: supertest.Agent;
  clock: FakeClock;
  logs: LogCapture;
  outbox: OutboxSender;
  /** The SMTP port the mail goes to, when the harness was made with `smtp`; throws otherwise. */
  readonly smtp: SmtpPort;
  /** `thing`, closed with `close` when the harness closes. */
  own<T>(thing: T, close: (thing: T) => unknown): T;
  close(): Promise<void>;
}

export interface HarnessOptions extends Pick<ContextOptions, "limiterBacking"> {
  /** Mail goes to a real SMTP sink on loopback (unless the overrides name another transport). */
  smtp?: SmtpChoice;
  /** Every request the app answers, with its response, is handed here (see test/helpers/openapi.ts). */
  record?: (exchange: Exchange) => void;
}


/** The overrides with mail sent to `smtp`, unless they name a transport of their own. */
export function withSmtpTransport<T extends DeepPartial<Config>>(overrides: T, smtp: SmtpPort | undefined): T {
  if (!smtp || overrides.mail?.transport !== undefined) return overrides;
  return { ...overrides, mail: { ...overrides.mail, transport: smtp.url } };
}

/**
 * A real app on a real SQLite file in a temporary directory; only the clock is fake. The harness
 * owns the directory, the store, the outbox sender and the SMTP sink, and close() ends them all.
 */
export async function createHarness(overrides: DeepPartial<Config> = {}, options: HarnessOptions = {}): Promise<Harness> {
  const { smtp: smtpChoice, record, ...contextOptions } = options;
  const lifetimes = new Lifetimes();
  try {
    const smtp = smtpChoice === undefined ? undefined : await openSmtpPort(lifetimes, smtpChoice);
    const dir = lifetimes.own(mkdtempSync(join(tmpdir(), "gatehouse-test-")), (d) => rmSync(d, { recursive: true, force: true }));
    const raw = testConfig(dir, withSmtpTransport(overrides, smtp));
    const configPath = join(dir, "config.json");
    writeFileSync(configPath, JSON.stringify(raw, null, 2));
    const config = parseConfig(raw, configPath);
    const store = lifetimes.own(await openStore(config.storage), (st) => st.close());
    const logs = new LogCapture();
    const clock = new FakeClock();
    const ctx = await createContext(config, store, { log: createLogger("debug", logs), clock, ...contextOptions });
    const outbox = lifetimes.own(new OutboxSender(ctx), (o) => o.stop());
    const app = createApp(ctx);
    if (record) recordExchanges(app, record);
    recordIfAsked(app, config);
    return {
      dir,
      configPath,
      config,
      ctx,
      app,
      http: supertest.agent(app.callback()),
      clock,
      logs,
      outbox,
      get smtp() {
        return requireSmtp(smtp, "this harness");
      },
      own: (thing, close) => lifetimes.own(thing, close),
      close: () => lifetimes.closeAll(),
    };
  } catch (err) {
    await lifetimes.closeAll();
    throw err;
  }
}

export interface RegistrationFields {
  username: string;
  password: string;
  ip: string;
  mail: string;
  auth_token: string;
}

let counter = 0;
/** A valid registration, unique per call unless fields are given. */
export function registration(fields: Partial<RegistrationFields> = {}): RegistrationFields {
  counter += 1;
  return {
    username: `user${counter}`,
    password: "correct horse battery",
    ip: `198.51.100.${counter % 250}`,
    mail: `user${counter}@example.org`,
    auth_token: AUTH_TOKEN,
    ...fields,
  };
}

export function encode(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value), "utf8").toString("base64");
}

/** POSTs a registration the way mod_register_json clients do: base64 of the JSON. */
export function postRegistration(h: Pick<Harness, "http" | "config">, value: unknown): supertest.Test {
  return h.http.post(h.config.register.basePath).set("Content-Type", "application/encoded").send(encode(value));
}

/** A registration posted by a client that asks for JSON errors, so the refusal code can be asserted. */
export function postRegistrationJson(h: Pick<Harness, "http" | "config">, value: unknown): supertest.Test {
  return postRegistration(h, value).set("Accept", "application/json");
}

/** Completes a registration over HTTP, as the confirm page's button does, asking for a JSON answer. */
export function verifyToken(h: Pick<Harness, "http" | "config">, token: string): supertest.Test {
  return h.http.post(`${h.config.register.basePath}verify/${encodeURIComponent(token)}`).set("Accept", "application/json");
}

/** Registers (registration(fields)) and verifies over HTTP, so the name and mail belong to an account; returns its username. */
export async function registerAndVerify(h: Pick<Harness, "http" | "config">, fields: Partial<RegistrationFields> = {}): Promise<string> {
  const res = await postRegistration(h, registration(fields));
  assert.equal(res.status, 200, res.text);
  const done = await verifyToken(h, res.text);
  assert.equal(done.status, 200, done.text);
  return (done.body as { username: string }).username;
}

/** Runs `body` on a fresh harness and closes it however `body` ends. */
export async function withHarness(
  overrides: Parameters<typeof createHarness>[0],
  body: (h: Harness) => Promise<void>,
  options: Parameters<typeof createHarness>[1] = {},
): Promise<void> {
  const h = await createHarness(overrides, options);
  try {
    await body(h);
  } finally {
    await h.close();
  }
}

/** The value of one sample line of /metrics, e.g. `gatehouse_registrations_total{outcome="accepted"}`. */
export function metricSample(text: string, series: string): number | null {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : null;
}

export interface StoreSnapshot {
  pending: Awaited<ReturnType<AppContext["store"]["listPending"]>>;
  accounts: Awaited<ReturnType<AppContext["store"]["listAccounts"]>>;
  outboxDepth: number;
}

/** What a refused request must leave untouched: pending registrations, accounts and queued outbox items. */
export async function storeSnapshot(h: Pick<Harness, "ctx" | "clock">): Promise<StoreSnapshot> {
  return {
    pending: await h.ctx.store.listPending(h.clock.now()),
    accounts: await h.ctx.store.listAccounts(),
    outboxDepth: await h.ctx.store.outboxDepth(),
  };
}
