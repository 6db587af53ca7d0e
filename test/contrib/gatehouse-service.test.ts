import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { environmentOverrides, loadConfig, PACKAGE_ROOT } from "../../src/config.ts";

const UNIT_FILE = join(PACKAGE_ROOT, "contrib/gatehouse.service");
const UNIT = readFileSync(UNIT_FILE, "utf8");

interface Directive {
  key: string;
  value: string;
  /** Written commented out (`#Key=value`): an optional line the operator may enable. */
  optional: boolean;
}

/** The unit's `Key=value` lines, with the commented-out ones marked optional. */
function directives(): Directive[] {
  const found: Directive[] = [];
  for (const line of UNIT.split("\n")) {
    const match = /^(#?)([A-Z][A-Za-z]+)=(.*)$/.exec(line);
    if (match) found.push({ optional: match[1] === "#", key: match[2]!, value: match[3]! });
  }
  return found;
}

function settings(key: string): string[] {
  return directives().filter((d) => d.key === key && !d.optional).map((d) => d.value);
}

function systemdAnalyze(): string | undefined {
  for (const dir of ["/usr/bin", "/bin"]) {
    try {
      accessSync(join(dir, "systemd-analyze"), constants.X_OK);
      return join(dir, "systemd-analyze");
    } catch {
      // not there
    }
  }
  return undefined;
}

test("systemd-analyze verify finds nothing to say about contrib/gatehouse.service", (t) => {
  const tool = systemdAnalyze();
  if (!tool) {
    t.skip("systemd-analyze is not installed (apt-get install systemd)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-unit-"));
  try {
    // verify checks that ExecStart's program exists; where node lives elsewhere, this node stands in.
    let unit = UNIT;
    try {
      accessSync("/usr/bin/node", constants.X_OK);
    } catch {
      unit = unit.replace(/^(Exec\w+=)\/usr\/bin\/node /m, `$1${process.execPath} `);
      t.diagnostic(`/usr/bin/node is missing here: verified with ExecStart on ${process.execPath}`);
    }
    const file = join(dir, "gatehouse.service");
    writeFileSync(file, unit);
    const result = spawnSync(tool, ["verify", file], { encoding: "utf8", timeout: 60_000 });
    const said = `${result.stdout}${result.stderr}`.trim();
    const aboutUnit = said.split("\n").filter((line) => line.includes("gatehouse.service"));
    // systemd-analyze exits 0 on an unknown key or a value it cannot parse, and only warns: any word about the unit fails.
    assert.deepEqual(aboutUnit, [], said);
    if (result.status !== 0) {
      t.skip(`systemd-analyze verify cannot run here (exit ${result.status ?? result.signal}): ${said || "no output"}`);
      return;
    }
    assert.equal(said, "", "verify printed nothing at all");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the unit runs as a throwaway user with a private state directory and the hardening asked for", () => {
  const expected: Record<string, string> = {
    DynamicUser: "yes",
    StateDirectory: "gatehouse",
    UMask: "0077",
    ProtectSystem: "strict",
    ProtectHome: "yes",
    PrivateTmp: "yes",
    NoNewPrivileges: "yes",
    RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
  };
  for (const [key, value] of Object.entries(expected)) assert.deepEqual(settings(key), [value], key);
  assert.ok(settings("SystemCallFilter").includes("@system-service"), "SystemCallFilter=@system-service");
  // V8 writes the machine code it compiles: MemoryDenyWriteExecute would kill node at start.
  assert.deepEqual(settings("MemoryDenyWriteExecute"), []);
  const start = settings("ExecStart");
  assert.equal(start.length, 1);
  assert.match(start[0]!, /\/bin\/gatehouse\.js serve --config \$\{GATEHOUSE_CONFIG\}$/);
  assert.ok(settings("Environment").some((e) => e.startsWith("GATEHOUSE_CONFIG=/")), "GATEHOUSE_CONFIG names an absolute file");
});

test("every GATEHOUSE__ variable the unit sets, or offers commented out, names a config key, read from a credential it loads", () => {
  const all = directives();
  const variables = all.filter((d) => d.key === "Environment" && d.value.startsWith("GATEHOUSE__"));
  assert.ok(variables.length >= 5, "the auth tokens and the optional secrets");
  for (const variable of variables) {
    const [name, value] = variable.value.split("=") as [string, string];
    const { overrides, problems } = environmentOverrides({ [name]: value });
    assert.deepEqual(problems, [], name);
    assert.equal(overrides[0]?.fromFile, true, `${name} reads its value from a file`);
    const credential = /^%d\/([\w-]+)$/.exec(value)?.[1];
    assert.ok(credential, `${name} points into the credentials directory (%d): ${value}`);
    const loads = all.filter((d) => d.key === "LoadCredential" && d.value.startsWith(`${credential}:/etc/gatehouse/credentials/`));
    assert.equal(loads.length, 1, `one LoadCredential=${credential}:… for ${name}`);
    assert.equal(loads[0]!.optional, variable.optional, `${name} and its LoadCredential are enabled together`);
  }
  assert.ok(variables.some((v) => !v.optional && v.value.startsWith("GATEHOUSE__REGISTER__AUTH_TOKENS_FILE=")), "the auth tokens are always loaded");
});

test("with the unit's variables and credential files, a config without secrets loads with the tokens and secret from the files", () => {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-credentials-"));
  try {
    const credentials = join(dir, "credentials");
    const configPath = join(dir, "config.json");
    writeFileSync(configPath, JSON.stringify({ storage: `sqlite:${join(dir, "gatehouse.db")}`, mail: { from: "gatehouse <noreply@example.org>", transport: `dir:${join(dir, "mail")}` } }));
    const env: Record<string, string> = {};
    const files: Record<string, string> = { "auth-tokens": '["a-long-random-token-from-a-credential"]\n', secret: "0123456789abcdef0123456789abcdef\n" };
    for (const d of directives().filter((x) => x.key === "Environment" && x.value.startsWith("GATEHOUSE__"))) {
      const [name, value] = d.value.split("=") as [string, string];
      const credential = value.replace(/^%d\//, "");
      if (!(credential in files)) continue;
      env[name] = join(credentials, credential);
    }
    assert.deepEqual(Object.keys(env).sort(), ["GATEHOUSE__REGISTER__AUTH_TOKENS_FILE", "GATEHOUSE__SECRET_FILE"]);
    // What systemd puts in $CREDENTIALS_DIRECTORY, an editor's trailing newline included.
    mkdirSync(credentials);
    for (const [name, content] of Object.entries(files)) writeFileSync(join(credentials, name), content, { mode: 0o600 });
    const config = loadConfig(configPath, env);
    assert.deepEqual(config.register.authTokens, ["a-long-random-token-from-a-credential"]);
    assert.equal(config.secret, "0123456789abcdef0123456789abcdef");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
