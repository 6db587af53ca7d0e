import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../src/cli/index.ts";
import { ConfigError, EXAMPLE_CONFIG, loadConfig, PACKAGE_ROOT, parseConfig } from "../src/config.ts";
import { AUTH_TOKEN, registration } from "./helpers/harness.ts";
import { gatehouseArgs } from "./helpers/process.ts";
import {
  captureIo,
  countLogs,
  createConfigDir,
  editConfig,
  freePort,
  postRegistrationTo,
  waitFor,
  withServiceDir,
  type ConfigDir,
  type TestService,
} from "./helpers/service.ts";

const MINIMAL = { register: { authTokens: ["t0ken"] } };

/** The problems a ConfigError lists for `raw`; fails when the config is accepted. */
function problemsOf(raw: unknown): string[] {
  try {
    parseConfig(raw, "test.json");
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.file, "test.json");
    return err.problems;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

function withRegister(register: Record<string, unknown>): Record<string, unknown> {
  return { register: { authTokens: ["t0ken"], ...register } };
}

/** Waits until the log has `count` lines starting with `msg`. */
function waitForLog(svc: TestService, msg: string, count: number): Promise<boolean> {
  return waitFor(() => countLogs(svc.logs, msg) >= count, {
    timeoutMs: 5000,
    what: `${count} log line(s) "${msg}"; log so far:\n${svc.logs.text()}`,
  });
}

async function register(svc: TestService, fields: Parameters<typeof registration>[0] = {}): Promise<number> {
  return (await postRegistrationTo(svc.service.url, registration(fields))).status;
}

// --- parseConfig / loadConfig ---------------------------------------------------------------

test("defaults from the DESIGN §2 table fill every key that is left out", () => {
  const config = parseConfig(MINIMAL);
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 8080 });
  assert.equal(config.publicUrl, "http://localhost:8080");
  assert.equal(config.trustProxy, false);
  assert.equal(config.storage, "sqlite:./data/gatehouse.db");
  assert.equal(config.redis, undefined);
  assert.equal(config.secret, undefined);
  assert.deepEqual(config.register, {
    basePath: "/register_account/",
    secure: true,
    authTokens: ["t0ken"],
    throttleSeconds: 0,
    blacklist: [],
    whitelist: [],
    filteredMails: [],
    pendingTtlSeconds: 86400,
    sendMail: true,
    blockDisposable: false,
    ipv6Prefix: 64,
    resendLimit: 3,
    approval: "none",
    moderators: [],
    approvalTtlSeconds: 1209600,
  });
  assert.deepEqual(config.antibot, {
    proofOfWork: "off",
    complexity: 100_000,
    auto: { perAddress: 10, perForm: 200, windowSeconds: 60, holdSeconds: 3600 },
  });
  assert.deepEqual(config.metrics, { enabled: true });
  assert.equal(config.mail.transport, "dir:./data/mail");
  assert.equal(typeof config.mail.from, "string");
  assert.deepEqual(config.invites, { ttlSeconds: 604800, apiPath: "/invites_api", requireApproval: false });
  assert.equal(config.accounts.minPasswordLength, 8);
  assert.ok(config.accounts.reservedUsernames.includes("admin"), "config.accounts.reservedUsernames.includes(\"admin\")");
  assert.ok(config.accounts.reservedUsernames.includes("root"), "config.accounts.reservedUsernames.includes(\"root\")");
  assert.equal(config.events, undefined);
});

test("parseConfig leaves the caller's object alone and keeps values that are given", () => {
  const raw = { listen: { port: 9000 }, register: { authTokens: ["a", "b"], secure: false, throttleSeconds: 30 } };
  const before = structuredClone(raw);
  const config = parseConfig(raw);
  assert.deepEqual(raw, before);
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 9000 });
  assert.deepEqual(config.register.authTokens, ["a", "b"]);
  assert.equal(config.register.secure, false);
  assert.equal(config.register.throttleSeconds, 30);
});

test("a trailing slash on publicUrl is dropped so links have no double slash", () => {
  assert.equal(parseConfig({ ...MINIMAL, publicUrl: "https://example.org/" }).publicUrl, "https://example.org");
});

test("the embedded config.example.json is valid", () => {
  const config = loadConfig(EXAMPLE_CONFIG);
  assert.equal(config.listen.port, 8080);
  assert.equal(config.storage, "sqlite:./data/gatehouse.db");
});

test("an unknown top-level key is refused by name, listing the keys there are", () => {
  const problems = problemsOf({ ...MINIMAL, bogus: 1 });
  assert.equal(problems.length, 1, problems.join("\n"));
  assert.match(problems[0]!, /^bogus: unknown key \(known at the top level: listen, publicUrl, trustProxy, storage, /);
});

test("an unknown nested key is refused with its key path, and a near miss gets a did-you-mean", () => {
  const [bogus, ...more] = problemsOf(withRegister({ bogus: true }));
  assert.deepEqual(more, []);
  assert.match(bogus!, /^register\.bogus: unknown key \(known under register: basePath, secure, authTokens, /);
  assert.match(problemsOf({ ...MINIMAL, listen: { prot: 80 } })[0]!, /^listen\.prot: unknown key; did you mean "port"\? \(known under listen: host, port\)$/);
  assert.match(problemsOf(withRegister({ authToken: ["x"] }))[0]!, /^register\.authToken: unknown key; did you mean "authTokens"\?/);
  const [retries] = problemsOf({ ...MINIMAL, events: { webhook: { url: "https://hook.test/", secret: "0123456789abcdef", retries: 3 } } });
  assert.equal(retries, "events.webhook.retries: unknown key (known under events.webhook: url, secret)");
});

test("a value of the wrong type is refused naming its path", () => {
  const [throttle] = problemsOf(withRegister({ throttleSeconds: "10" }));
  assert.match(throttle!, /^register\.throttleSeconds: .*integer/);
  const [port] = problemsOf({ ...MINIMAL, listen: { port: "8080" } });
  assert.match(port!, /^listen\.port: .*integer/);
  const [secure] = problemsOf(withRegister({ secure: "yes" }));
  assert.match(secure!, /^register\.secure: .*boolean/);
  const [tokens] = problemsOf({ register: { authTokens: "t0ken" } });
  assert.match(tokens!, /^register\.authTokens: .*array/);
});

test("every problem of a file is named at once", () => {
  const problems = problemsOf({ bogus: 1, register: { authTokens: ["t0ken"], throttleSeconds: -1 } });
  assert.ok(problems.some((p) => p.startsWith("bogus: unknown key")), problems.join("\n"));
  assert.ok(problems.some((p) => p.startsWith("register.throttleSeconds: ")), problems.join("\n"));
});

test("a bad CIDR or IP in the blacklist or whitelist is refused naming the entry", () => {
  const [cidr] = problemsOf(withRegister({ blacklist: ["192.0.2.0/24", "10.0.0.0/33"] }));
  assert.match(cidr!, /^register\.blacklist\.1: "10\.0\.0\.0\/33" is not a valid/);
  const [ip] = problemsOf(withRegister({ whitelist: ["not-an-ip"] }));
  assert.match(ip!, /^register\.whitelist\.0: "not-an-ip" is not a valid/);
});

test("a bad regular expression in filteredMails is refused naming the entry", () => {
  const [regex] = problemsOf(withRegister({ filteredMails: [".*ok\\.tld", "(unclosed"] }));
  assert.match(regex!, /^register\.filteredMails\.1: "\(unclosed" is not a valid regex/);
});

test("authTokens are required and may not be empty", () => {
  assert.deepEqual(problemsOf({ register: {} }), ['register.authTokens: is required, e.g. ["a-long-random-token-from-openssl-rand-hex-32"]']);
  assert.deepEqual(problemsOf({}), ['register: is required, e.g. {"authTokens":["a-long-random-token-from-openssl-rand-hex-32"]}']);
  const [empty] = problemsOf({ register: { authTokens: [] } });
  assert.match(empty!, /^register\.authTokens: /);
});

test("loadConfig names the file when it is missing or not JSON", () => {
  const cfg = createConfigDir();
  try {
    const missing = join(cfg.dir, "nope.json");
    assert.throws(() => loadConfig(missing), (err: unknown) => {
      assert.ok(err instanceof ConfigError, "err instanceof ConfigError");
      assert.match(err.message, /nope\.json/);
      assert.match(err.message, /cannot read file/);
      return true;
    });
    const broken = join(cfg.dir, "broken.json");
    writeFileSync(broken, "{ \"register\": ");
    assert.throws(() => loadConfig(broken), /broken\.json[\s\S]*not valid JSON/);
  } finally {
    cfg.remove();
  }
});

test("check-config exits 0 for a good file", async () => {
  const cfg = createConfigDir();
  try {
    const cli = captureIo();
    assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 0, cli.err.join("\n"));
    assert.equal(cli.out[0], `config ok: ${cfg.configPath}`);
    assert.ok(cli.out.some((line) => /^\s+register\.throttleSeconds\s+default\s+0$/.test(line)), cli.out.join("\n"));
    assert.deepEqual(cli.err, []);
  } finally {
    cfg.remove();
  }
});

test("check-config exits 1 and names the bad key on stderr", async () => {
  const cfg = createConfigDir();
  try {
    cfg.replace(editConfig(cfg.raw, (c) => Object.assign(c.register, { bogus: 1 })));
    const cli = captureIo();
    assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 1);
    assert.deepEqual(cli.out, []);
    const err = cli.err.join("\n");
    assert.match(err, /register\.bogus: unknown key/);
    assert.ok(err.includes(cfg.configPath), err);
  } finally {
    cfg.remove();
  }
});

test("check-config exits 1 naming a file that does not exist", async () => {
  const cfg = createConfigDir();
  try {
    const missing = join(cfg.dir, "missing.json");
    const cli = captureIo();
    assert.equal(await runCli(["check-config", "--config", missing], cli.io), 1);
    assert.deepEqual(cli.out, []);
    assert.match(cli.err.join("\n"), /missing\.json[\s\S]*cannot read file/);
  } finally {
    cfg.remove();
  }
});

// --- environment overrides (DESIGN §2) -------------------------------------------------------

test("GATEHOUSE__ variables win over the file, each read as the schema types its key", () => {
  const config = parseConfig({ register: { authTokens: ["from-file"], throttleSeconds: 5 }, trustProxy: false }, "test.json", {
    GATEHOUSE__REGISTER__AUTH_TOKENS: '["from-env-1","from-env-2"]',
    GATEHOUSE__REGISTER__THROTTLE_SECONDS: "30",
    GATEHOUSE__TRUST_PROXY: "true",
    GATEHOUSE__LISTEN__PORT: "9000",
    GATEHOUSE__SECRET: "01234567890123456789012345678901",
    GATEHOUSE__MAIL__FROM: '"quoted" <a@b.example>',
    GATEHOUSE__ACCOUNTS__MIN_PASSWORD_LENGTH: "12",
  });
  assert.deepEqual(config.register.authTokens, ["from-env-1", "from-env-2"]);
  assert.equal(config.register.throttleSeconds, 30);
  assert.equal(config.trustProxy, true);
  assert.deepEqual(config.listen, { host: "127.0.0.1", port: 9000 });
  // A string key takes the text as it is: an all-digit secret stays a string, quotes stay quotes.
  assert.equal(config.secret, "01234567890123456789012345678901");
  assert.equal(config.mail.from, '"quoted" <a@b.example>');
  assert.equal(config.accounts.minPasswordLength, 12);
});

test("a key that may be a string or an object (mail.transport) is an object only when given a JSON object", () => {
  const url = parseConfig(MINIMAL, "test.json", { GATEHOUSE__MAIL__TRANSPORT: "smtp://user:pw@mail.example:587" });
  assert.equal(url.mail.transport, "smtp://user:pw@mail.example:587");
  const options = parseConfig(MINIMAL, "test.json", { GATEHOUSE__MAIL__TRANSPORT: '{"host":"mail.example","port":25}' });
  assert.deepEqual(options.mail.transport, { host: "mail.example", port: 25 });
});

test("GATEHOUSE__…_FILE reads the value from a file, dropping one trailing newline, and builds missing parents", () => {
  const cfg = createConfigDir();
  try {
    const tokens = join(cfg.dir, "tokens");
    writeFileSync(tokens, '["from-a-file"]\n');
    const secret = join(cfg.dir, "secret");
    writeFileSync(secret, "  a secret with spaces and a newline kept inside\n\n");
    const hook = join(cfg.dir, "hook");
    writeFileSync(hook, "webhook-secret-0123456789\r\n");
    const config = parseConfig({ register: { authTokens: ["from-file"] } }, "test.json", {
      GATEHOUSE__REGISTER__AUTH_TOKENS_FILE: tokens,
      GATEHOUSE__SECRET_FILE: secret,
      GATEHOUSE__EVENTS__WEBHOOK__URL: "https://hooks.example/in",
      GATEHOUSE__EVENTS__WEBHOOK__SECRET_FILE: hook,
    });
    assert.deepEqual(config.register.authTokens, ["from-a-file"]);
    assert.equal(config.secret, "  a secret with spaces and a newline kept inside\n");
    assert.deepEqual(config.events?.webhook, { url: "https://hooks.example/in", secret: "webhook-secret-0123456789" });
  } finally {
    cfg.remove();
  }
});

test("other variables are no config overrides: GATEHOUSE_LOG_LEVEL, GATEHOUSE_CONFIG, PATH", () => {
  const config = parseConfig(MINIMAL, "test.json", { GATEHOUSE_LOG_LEVEL: "debug", GATEHOUSE_CONFIG: "/x.json", PATH: "/bin", GATEHOUSE_TEST_PG: "postgres://x" });
  assert.deepEqual(config, parseConfig(MINIMAL));
});

test("an unknown GATEHOUSE__ path is refused naming the variable and the keys that exist there", () => {
  const problems = (env: Record<string, string>) => {
    try {
      parseConfig(MINIMAL, "test.json", env);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
    assert.fail("accepted");
  };
  const [nested] = problems({ GATEHOUSE__REGISTER__AUTH_TOKEN: '["x"]' });
  assert.match(nested!, /^GATEHOUSE__REGISTER__AUTH_TOKEN: names no config key \(AUTH_TOKEN under register\); known under register: BASE_PATH, SECURE, AUTH_TOKENS,/);
  const [top] = problems({ GATEHOUSE__SECRETS: "x" });
  assert.match(top!, /^GATEHOUSE__SECRETS: names no config key \(SECRETS at the top level\); known at the top level: LISTEN, PUBLIC_URL,/);
  const [inside] = problems({ GATEHOUSE__MAIL__TRANSPORT__HOST: "x" });
  assert.match(inside!, /^GATEHOUSE__MAIL__TRANSPORT__HOST: names no config key \(HOST under mail\.transport\) \(mail\.transport takes one JSON value\)/);
  assert.equal(problems({ GATEHOUSE__: "x", GATEHOUSE__LISTEN__: "1" }).length, 2);
});

test("a bad value is refused naming the variable, without echoing the value", () => {
  const refuse = (env: Record<string, string>, expected: RegExp) => {
    assert.throws(() => parseConfig(MINIMAL, "test.json", env), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join("\n");
      assert.match(text, expected);
      for (const value of Object.values(env)) assert.ok(!text.includes(value), `the message echoes ${value}: ${text}`);
      return true;
    });
  };
  // The examples come from the schema's annotations.
  refuse({ GATEHOUSE__REGISTER__AUTH_TOKENS: "s3cret-token-not-json" }, /^GATEHOUSE__REGISTER__AUTH_TOKENS: expected array as JSON, e\.g\. '\["a-long-random-token-from-openssl-rand-hex-32"\]'$/);
  refuse({ GATEHOUSE__REGISTER__THROTTLE_SECONDS: "soon" }, /^GATEHOUSE__REGISTER__THROTTLE_SECONDS: expected integer as JSON, e\.g\. 60$/);
  // Valid JSON of the wrong type: the schema's message, with the variable that set it.
  refuse({ GATEHOUSE__REGISTER__THROTTLE_SECONDS: "\"12\"" }, /^register\.throttleSeconds: must be integer, e\.g\. 60 \(set by GATEHOUSE__REGISTER__THROTTLE_SECONDS\)$/);
  refuse({ GATEHOUSE__REGISTER__AUTH_TOKENS: '[""]' }, /^register\.authTokens\.0: must NOT have fewer than 1 characters, e\.g\. "a-long-random-token-from-openssl-rand-hex-32" \(set by GATEHOUSE__REGISTER__AUTH_TOKENS\)$/);
  refuse({ GATEHOUSE__SECRET: "short-secret" }, /^secret: must NOT have fewer than 32 characters, e\.g\. "64-hex-digits-from-openssl-rand-hex-32" \(set by GATEHOUSE__SECRET\)$/);
});

test("a value given both directly and as a _FILE, or a _FILE that cannot be read, is refused naming the variables", () => {
  assert.throws(
    () => parseConfig(MINIMAL, "test.json", { GATEHOUSE__SECRET: "x".repeat(40), GATEHOUSE__SECRET_FILE: "/run/secrets/x" }),
    /GATEHOUSE__SECRET and GATEHOUSE__SECRET_FILE: both set secret; set one/,
  );
  assert.throws(
    () => parseConfig(MINIMAL, "test.json", { GATEHOUSE__SECRET_FILE: "/nonexistent/gatehouse-secret" }),
    /GATEHOUSE__SECRET_FILE: cannot read \/nonexistent\/gatehouse-secret: ENOENT/,
  );
});

test("loadConfig reads the process environment; check-config says which keys came from it, never their values", async () => {
  const cfg = createConfigDir();
  const token = "env-token-that-must-not-be-printed";
  process.env["GATEHOUSE__REGISTER__AUTH_TOKENS"] = JSON.stringify([token]);
  try {
    assert.deepEqual(loadConfig(cfg.configPath).register.authTokens, [token]);
    const cli = captureIo();
    assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 0, cli.err.join("\n"));
    assert.equal(cli.out[0], `config ok: ${cfg.configPath}`);
    assert.ok(cli.out.some((line) => /^\s+register\.authTokens\s+env GATEHOUSE__REGISTER__AUTH_TOKENS\s+\["\*{8}"\]$/.test(line)), cli.out.join("\n"));
    assert.ok(![...cli.out, ...cli.err].join("\n").includes(token), "the token itself is not printed");
  } finally {
    delete process.env["GATEHOUSE__REGISTER__AUTH_TOKENS"];
    cfg.remove();
  }
});

// --- warnings about a valid but risky config ------------------------------------------------

const SHORT_TOKEN = "prosody-token";

test("check-config warns about an auth token shorter than 32 characters without printing it, and still accepts it", async () => {
  const cfg = createConfigDir({ register: { authTokens: [AUTH_TOKEN, SHORT_TOKEN] } });
  try {
    const cli = captureIo();
    assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 0);
    assert.equal(cli.out[0], `config ok: ${cfg.configPath}`);
    assert.ok(!cli.out.join("\n").includes(SHORT_TOKEN), "the token itself is not printed");
    assert.equal(cli.err.length, 1, cli.err.join("\n"));
    assert.match(cli.err[0]!, /^warning: register\.authTokens\[1\] is only 13 characters/);
    assert.ok(!cli.err[0]!.includes(SHORT_TOKEN), "the token itself is not printed");
  } finally {
    cfg.remove();
  }
});

test("an environment override stays in force across a reload of the file", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start({ environment: { GATEHOUSE__REGISTER__AUTH_TOKENS: '["env-token"]' } });
    assert.equal(await register(svc, { auth_token: "env-token" }), 200);
    assert.equal(await register(svc, { auth_token: AUTH_TOKEN }), 401);
    cfg.replace(editConfig(cfg.raw, (c) => void (c.register.throttleSeconds = 0)));
    assert.equal(svc.service.reload(), true);
    assert.equal(await register(svc, { auth_token: "env-token" }), 200);
    assert.equal(await register(svc, { auth_token: AUTH_TOKEN }), 401);
  }));

test("a short auth token is warned about at start-up and on reload, and registrations with it are accepted", () =>
  withServiceDir({ register: { authTokens: [SHORT_TOKEN] } }, async ({ cfg, start }) => {
    const svc = await start();
    const warnings = () => svc.logs.lines.filter((l) => l["level"] === 40 && String(l["msg"]).startsWith("config warning: register.authTokens[0]"));
    assert.equal(warnings().length, 1, svc.logs.text());
    assert.equal(await register(svc, { auth_token: SHORT_TOKEN }), 200);
    cfg.replace(editConfig(cfg.raw, (c) => (c.register.filteredMails = [".*@banned\\.test"])));
    await waitForLog(svc, "config reloaded", 1);
    assert.equal(warnings().length, 2, "warned again on reload");
    assert.ok(!svc.logs.text().includes(SHORT_TOKEN), "the token itself is never logged");
  }));

test("check-config and start-up warn when /metrics is on a non-loopback listener", async () => {
  const cases: [Record<string, unknown>, boolean][] = [
    [{ listen: { host: "0.0.0.0", port: 0 } }, true],
    [{ listen: { host: "::", port: 0 } }, true],
    [{ listen: { host: "203.0.113.5", port: 0 } }, true],
    [{ listen: { host: "127.0.0.1", port: 0 } }, false],
    [{ listen: { host: "::1", port: 0 } }, false],
    [{ listen: { host: "localhost", port: 0 } }, false],
    [{ listen: { host: "0.0.0.0", port: 0 }, metrics: { listen: { host: "127.0.0.1", port: 0 } } }, false],
    [{ listen: { host: "0.0.0.0", port: 0 }, metrics: { enabled: false } }, false],
  ];
  for (const [overrides, warned] of cases) {
    const cfg = createConfigDir(overrides);
    try {
      const cli = captureIo();
      assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 0);
      const said = cli.err.some((line) => /^warning: \/metrics is served on the public listener/.test(line));
      assert.equal(said, warned, `${JSON.stringify(overrides)}: ${cli.err.join("\n")}`);
    } finally {
      cfg.remove();
    }
  }
  await withServiceDir({ listen: { host: "0.0.0.0", port: 0 } }, async ({ start }) => {
    // Listens on loopback for the test; the warning is about what the config file asks for.
    const svc = await start({ listen: { host: "127.0.0.1", port: 0 } });
    assert.equal(countLogs(svc.logs, "config warning: /metrics is served on the public listener"), 1, svc.logs.text());
  });
});

// --- hot reload ------------------------------------------------------------------------------

test("an editor's save (write and rename) that adds a mail filter is applied while running", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start();
    assert.equal(await register(svc, { mail: "before@banned.test" }), 200);

    cfg.replace(editConfig(cfg.raw, (c) => (c.register.filteredMails = [".*@banned\\.test"])));
    await waitForLog(svc, "config reloaded", 1);
    assert.equal(await register(svc, { mail: "after@banned.test" }), 403);
    assert.equal(await register(svc, { mail: "after@fine.test" }), 200);
    // Rename-over left no temporary file behind to confuse the watcher.
    assert.deepEqual(readdirSync(cfg.dir).filter((f) => f.endsWith(".tmp")), []);
  }));

test("an invalid file is refused with the reason logged and the last good config stays in force", () =>
  withServiceDir({ register: { filteredMails: [".*@banned\\.test"] } }, async ({ cfg, start }) => {
    const good = cfg.raw;
    const svc = await start();

    cfg.replace("{ \"register\": { \"authTokens\": [");
    await waitForLog(svc, "config reload refused", 1);
    const notJson = svc.logs.lines.find((l) => String(l["msg"]).startsWith("config reload refused"))!;
    assert.match(String(notJson["reason"]), /not valid JSON/);
    assert.equal(notJson["level"], 50);
    assert.equal(await register(svc, { mail: "x@banned.test" }), 403, "the previous filter still works");
    assert.equal(await register(svc, { mail: "x@fine.test" }), 200, "registrations are still accepted");

    cfg.replace(editConfig(good, (c) => Object.assign(c.register, { filteredMails: [], bogus: 1 })));
    await waitForLog(svc, "config reload refused", 2);
    const unknownKey = svc.logs.lines.filter((l) => String(l["msg"]).startsWith("config reload refused"))[1]!;
    assert.match(String(unknownKey["reason"]), /register\.bogus: unknown key/);
    assert.equal(await register(svc, { mail: "y@banned.test" }), 403, "the filter of the last good config still works");
    assert.equal(await register(svc, { mail: "y@fine.test" }), 200);
    assert.equal(countLogs(svc.logs, "config reloaded"), 0);

    // Fixing the file brings the service back onto the file.
    cfg.replace(editConfig(good, (c) => (c.register.filteredMails = [])));
    await waitForLog(svc, "config reloaded", 1);
    assert.equal(await register(svc, { mail: "z@banned.test" }), 200);
  }));

test("auth tokens rotate without a restart: [old] → [old, new] → [new]", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const OLD = AUTH_TOKEN;
    const NEW = "rotated-auth-token-9876543210";
    const svc = await start();
    assert.equal(await register(svc, { auth_token: OLD }), 200);
    assert.equal(await register(svc, { auth_token: NEW }), 401);

    cfg.replace(editConfig(cfg.raw, (c) => (c.register.authTokens = [OLD, NEW])));
    await waitForLog(svc, "config reloaded", 1);
    assert.equal(await register(svc, { auth_token: OLD }), 200);
    assert.equal(await register(svc, { auth_token: NEW }), 200);

    cfg.replace(editConfig(cfg.raw, (c) => (c.register.authTokens = [NEW])));
    await waitForLog(svc, "config reloaded", 2);
    assert.equal(await register(svc, { auth_token: NEW }), 200);
    assert.equal(await register(svc, { auth_token: OLD }), 401);
  }));

test("service.reload(), the SIGHUP path, applies an edit and refuses a bad file", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start({ watchConfig: false });
    cfg.replace(editConfig(cfg.raw, (c) => (c.register.blacklist = ["203.0.113.0/24"])));
    assert.equal(await register(svc, { ip: "203.0.113.7" }), 200, "not watching: nothing changes by itself");

    assert.equal(svc.service.reload(), true);
    assert.equal(countLogs(svc.logs, "config reloaded"), 1);
    assert.equal(await register(svc, { ip: "203.0.113.8" }), 403);

    cfg.replace(editConfig(cfg.raw, (c) => (c.register.throttleSeconds = -5)));
    assert.equal(svc.service.reload(), false);
    assert.equal(countLogs(svc.logs, "config reload refused"), 1);
    assert.equal(svc.service.ctx.config.register.throttleSeconds, 0);
    assert.equal(await register(svc, { ip: "203.0.113.9" }), 403, "the last good blacklist stays");
  }));

test("a reload that changes mail settings sends the next mail the new way", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start({ watchConfig: false });
    const second = join(cfg.dir, "mail-2");
    cfg.replace(editConfig(cfg.raw, (c) => (c.mail.transport = `dir:${second}`)));
    assert.equal(svc.service.reload(), true);
    assert.equal(await register(svc), 200);
    await waitFor(() => {
      try {
        return readdirSync(second).some((f) => f.endsWith(".eml"));
      } catch {
        return false;
      }
    }, { what: "a mail in the new directory" });
  }));

test("changing listen or storage logs that it needs a restart; the rest is applied", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start();
    const port = await freePort();
    cfg.replace(editConfig(cfg.raw, (c) => {
      c.listen.port = port;
      c.register.filteredMails = [".*@banned\\.test"];
    }));
    await waitForLog(svc, "config reloaded", 1);
    const restart = svc.logs.lines.filter((l) => String(l["msg"]).startsWith("config changes that need a restart"));
    assert.equal(restart.length, 1);
    assert.deepEqual(restart[0]!["keys"], ["listen"]);
    assert.equal(await register(svc, { mail: "a@banned.test" }), 403, "the filter in the same file was applied");
    assert.equal(await register(svc, { mail: "a@fine.test" }), 200, "still serving on the old address");

    cfg.replace(editConfig(cfg.raw, (c) => (c.storage = `sqlite:${join(cfg!.dir, "other.db")}`)));
    await waitForLog(svc, "config reloaded", 2);
    const second = svc.logs.lines.filter((l) => String(l["msg"]).startsWith("config changes that need a restart"));
    assert.equal(second.length, 2);
    assert.deepEqual(second[1]!["keys"], ["storage"]);
  }));

test("`gatehouse serve` reloads on SIGHUP and exits 0 on SIGTERM", async () => {
  let cfg: ConfigDir | undefined;
  const port = await freePort();
  cfg = createConfigDir({ listen: { host: "127.0.0.1", port } });
  const child = spawn(process.execPath, gatehouseArgs("serve", "--config", cfg.configPath), {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, GATEHOUSE_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    let newline: number;
    while ((newline = stdout.indexOf("\n")) >= 0) {
      const line = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ msg: line });
      }
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const count = (msg: string) => lines.filter((l) => l["msg"] === msg).length;
  const describe = () => `stdout:\n${lines.map((l) => JSON.stringify(l)).join("\n")}\nstderr:\n${stderr}`;
  try {
    const listening = await waitFor(() => lines.find((l) => l["msg"] === "gatehouse listening"), {
      timeoutMs: 15_000,
      what: `'gatehouse listening'\n${describe()}`,
    });
    const url = `http://127.0.0.1:${port}`;
    assert.equal(listening["url"], url);
    assert.equal((await postRegistrationTo(url, registration({ mail: "a@banned.test" }))).status, 200);

    cfg.replace(editConfig(cfg.raw, (c) => (c.register.filteredMails = [".*@banned\\.test"])));
    child.kill("SIGHUP");
    await waitFor(() => count("config reloaded") >= 1, { what: `'config reloaded'\n${describe()}` });
    assert.equal((await postRegistrationTo(url, registration({ mail: "b@banned.test" }))).status, 403);

    // The file is unchanged now, so only the signal can cause this reload.
    const before = count("config reloaded");
    child.kill("SIGHUP");
    await waitFor(() => count("config reloaded") > before, { what: `a second 'config reloaded'\n${describe()}` });

    child.kill("SIGTERM");
    const result = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 10 s\n${describe()}`)), 10_000).unref()),
    ]);
    assert.deepEqual(result, { code: 0, signal: null }, describe());
    assert.equal(count("shutting down"), 1);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    cfg.remove();
  }
});
