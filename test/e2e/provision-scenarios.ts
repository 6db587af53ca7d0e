import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { ProvisionTargetConfig } from "../../src/config.ts";
import { createInvite } from "../../src/domain/invites.ts";
import { deleteUser, listUsers, provisionUser } from "../../src/domain/users.ts";
import { anyHolds, sqliteFiles } from "../helpers/files.ts";
import { registration } from "../helpers/harness.ts";
import { createConfigDir, postRegistrationTo, startTestService, waitFor, type ConfigDir, type TestService } from "../helpers/service.ts";

/** Spaces and what XML and JSON escape: it must arrive unchanged where people log in. */
export const PASSWORD = `correct horse &<>"' battery`;

/** One account server as the scenarios drive it. */
export interface ScenarioServer {
  target(): ProvisionTargetConfig;
  /** Whether a person can log in there with this password. */
  logsIn(username: string, password: string): Promise<boolean>;
  /** Makes the name someone else's on the server, outside gatehouse. */
  makeElsewhere(username: string): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface ScenarioOptions {
  /** Scenario 6 (an invite) runs unless false. */
  invite?: boolean;
  /** Extra config (e.g. storage on PostgreSQL) and a way to read raw rows for the erasure check. */
  overrides?: Record<string, unknown>;
  /** The sealed payloads the store holds now (provision jobs and pending secrets), for the erasure check. */
  sealedNow?: (cfg: ConfigDir) => Promise<string[]>;
  /** Whether any of `values` is still in the store's files or tables. */
  stillStored?: (cfg: ConfigDir, values: string[]) => Promise<boolean>;
}

let names = 0;
const fresh = (prefix: string) => `${prefix}${process.pid % 1000}n${++names}`;

/** The verify link of the newest mail to `address`, read from the mail directory. */
function mailedToken(cfg: ConfigDir, address: string): string {
  const dir = join(cfg.dir, "mail");
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".eml")).sort() : [];
  for (const file of files.reverse()) {
    const text = readFileSync(join(dir, file), "utf8");
    if (!text.includes(address)) continue;
    const match = /\/verify\/([A-Za-z0-9_-]+)/.exec(text.replace(/=\r?\n/g, ""));
    if (match?.[1]) return match[1];
  }
  throw new Error(`no verification mail to ${address}`);
}

/** The six scenarios of issue 12 against one running server, end to end over HTTP against a running gatehouse. */
export function provisionScenarios(name: string, startServer: () => Promise<ScenarioServer>, options: ScenarioOptions = {}): void {
  let server: ScenarioServer;
  let cfg: ConfigDir;
  let svc: TestService;

  before(async () => {
    server = await startServer();
    cfg = createConfigDir({
      ...(options.overrides ?? {}),
      accounts: { provision: [server.target()], provisionWaitMs: 4000 },
    } as never);
    svc = await startTestService(cfg.configPath, { logLevel: "debug" });
  });
  after(async () => {
    await svc?.close();
    await server?.close();
    cfg?.remove();
  });

  const tokens: string[] = [];
  const register = async (username: string, password = PASSWORD) => {
    const fields = registration({ username, password });
    const answer = await postRegistrationTo(svc.service.url, fields);
    if (answer.status === 200) tokens.push(answer.text.trim());
    return { ...answer, mail: fields.mail };
  };
  const complete = async (token: string) => {
    const res = await fetch(`${svc.service.url}/register_account/verify/${encodeURIComponent(token)}`, { method: "POST" });
    return { status: res.status, page: await res.text() };
  };
  const jobsDone = async (username: string) => {
    const user = (await listUsers(svc.service.ctx)).find((u) => u.username === username);
    return user !== undefined && user.targets.length > 0 && user.targets.every((t) => t.state === "ready");
  };

  test(`${name}: register → mail → verify → the person logs in there with the chosen password`, async () => {
    const username = fresh("alice");
    const answer = await register(username);
    assert.equal(answer.status, 200, answer.text);
    await svc.service.outbox.drain();
    const { status, page } = await complete(mailedToken(cfg, answer.mail));
    assert.equal(status, 200, page);
    assert.doesNotMatch(page, /ready shortly/);
    assert.equal(await server.logsIn(username, PASSWORD), true);
    assert.equal(await server.logsIn(username, "not the password"), false);
    assert.ok(await jobsDone(username));
  });

  test(`${name}: a name already taken on the server is refused at registration with 409`, async () => {
    const username = fresh("taken");
    await server.makeElsewhere(username);
    const answer = await register(username);
    assert.equal(answer.status, 409, answer.text);
    assert.equal((await listUsers(svc.service.ctx)).some((u) => u.username === username), false);
  });

  test(`${name}: server down at completion → "ready shortly"; back up → the account appears once, with the right password; the sealed password is gone`, async () => {
    const username = fresh("late");
    const answer = await register(username);
    assert.equal(answer.status, 200, answer.text);
    await server.stop();
    let sealed: string[] = [];
    try {
      const { status, page } = await complete(answer.text);
      assert.equal(status, 200, page);
      assert.match(page, /ready shortly/);
      const listed = (await listUsers(svc.service.ctx)).find((u) => u.username === username);
      assert.equal(listed?.targets[0]?.state, "provisioning");
      sealed = (await options.sealedNow?.(cfg)) ?? [];
    } finally {
      await server.start();
    }
    assert.ok((await provisionUser(svc.service.ctx, username))?.jobs === 1);
    svc.service.outbox.kick();
    await waitFor(() => jobsDone(username), { timeoutMs: 20_000, intervalMs: 200, what: "the job to finish" });
    assert.equal(await server.logsIn(username, PASSWORD), true);
    // Once more (a lost answer, a retry): still the one account, the same password.
    assert.equal(await provisionUser(svc.service.ctx, username).then((r) => r?.jobs), 0);
    if (options.stillStored) {
      assert.ok(sealed.length > 0, "the sealed password was found in the store while the job waited");
      await svc.service.outbox.drain();
      assert.equal(await options.stillStored(cfg, sealed), false, "a sealed password is still stored");
    }
  });

  test(`${name}: a name made on the server between registration and completion → the 409 page, nothing left half-made`, async () => {
    const username = fresh("race");
    const answer = await register(username);
    assert.equal(answer.status, 200, answer.text);
    await server.makeElsewhere(username);
    const { status, page } = await complete(answer.text);
    assert.equal(status, 409, page);
    assert.match(page, /another name/);
    assert.equal((await listUsers(svc.service.ctx)).some((u) => u.username === username), false);
    assert.equal(await server.logsIn(username, PASSWORD), false);
    // The name and the mail are free again in gatehouse: the same mail registers under another name.
    const again = await postRegistrationTo(svc.service.url, registration({ username: fresh("race"), mail: answer.mail }));
    assert.equal(again.status, 200, again.text);
  });

  test(`${name}: users delete → the login stops working on the server`, async () => {
    const username = fresh("gone");
    const answer = await register(username);
    assert.equal((await complete(answer.text)).status, 200);
    assert.equal(await server.logsIn(username, PASSWORD), true);
    assert.equal(await deleteUser(svc.service.ctx, username), username);
    svc.service.outbox.kick();
    await waitFor(async () => !(await server.logsIn(username, PASSWORD)), { timeoutMs: 15_000, intervalMs: 300, what: "the login to stop working" });
  });

  if (options.invite !== false) {
    test(`${name}: an invite accepted on the invite page → a working login on the server`, async () => {
      const username = fresh("invited");
      const { token } = await createInvite(svc.service.ctx, { kind: "admin" });
      const res = await fetch(`${svc.service.url}/invite/${token}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username, password: PASSWORD }).toString(),
      });
      const page = await res.text();
      assert.equal(res.status, 200, page);
      assert.doesNotMatch(page, /ready shortly/);
      assert.equal(await server.logsIn(username, PASSWORD), true);
    });
  }

  test(`${name}: no password, token or address is logged at debug level`, () => {
    const text = svc.logs.text();
    assert.ok(text.length > 0);
    for (const secret of [PASSWORD, "correct horse"]) assert.equal(text.includes(secret), false, `the log holds ${secret}`);
    assert.doesNotMatch(text, /@example\.org/);
    // The dir: transport (development only) logs the link it wrote, by design; no other line may hold a token.
    const others = svc.logs.lines.filter((line) => line["msg"] !== "verification mail written").map((line) => JSON.stringify(line)).join("\n");
    assert.ok(tokens.length > 0);
    for (const token of tokens) assert.equal(others.includes(token), false, "a verification token is in the log");
  });
}

/** The sealed values a SQLite store holds now: provision job payloads and pending secrets. */
export async function sqliteSealed(cfg: ConfigDir): Promise<string[]> {
  const { default: Database } = await import("better-sqlite3");
  const db = new Database(join(cfg.dir, "gatehouse.db"), { readonly: true, fileMustExist: true });
  try {
    const jobs = db.prepare("SELECT payload FROM outbox WHERE kind = 'provision' AND payload IS NOT NULL").all() as { payload: string }[];
    const pending = db.prepare("SELECT sealed_secret FROM users WHERE sealed_secret IS NOT NULL").all() as { sealed_secret: string }[];
    return [...jobs.map((r) => r.payload), ...pending.map((r) => r.sealed_secret)];
  } finally {
    db.close();
  }
}

/** Whether the SQLite files (database, WAL) still hold any of `values`. */
export async function sqliteStillHolds(cfg: ConfigDir, values: string[]): Promise<boolean> {
  const files = sqliteFiles(cfg.dir);
  return values.some((value) => anyHolds(files, value));
}
