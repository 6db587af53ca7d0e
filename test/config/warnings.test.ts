import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../../src/cli/index.ts";
import { EXAMPLE_CONFIG } from "../../src/config.ts";
import { runGatehouse } from "../helpers/cli.ts";
import { captureIo, countLogs, createConfigDir, freePort, withServiceDir } from "../helpers/service.ts";

// DESIGN §1: start-up says which config file it runs on and warns loudly when that is the example
// file or an example token is in use (and, as with /metrics, when a setting exposes more than it seems).

const WARN = 40;
const EXAMPLE_FILE_WARNING = "config warning: running on the example config";
const EXAMPLE_TOKEN_WARNING = "config warning: register.authTokens[0] is an example token";
const PLAIN_HTTP_WARNING = "config warning: register.secure is false and the service listens on";

function warnings(lines: Record<string, unknown>[]): string[] {
  return lines.filter((l) => l["level"] === WARN && String(l["msg"]).startsWith("config warning:")).map((l) => String(l["msg"]));
}

test("serve with no config file runs on the embedded example, names it, and warns about the file and its public token", () =>
  withServiceDir({}, async ({ spawn, own }) => {
    const cwd = own(mkdtempSync(join(tmpdir(), "gatehouse-example-")), (d) => rmSync(d, { recursive: true, force: true }));
    const port = await freePort();
    // A cold start of a whole process: generous, for a machine busy with other test runs.
    const serve = await spawn([], { cwd, env: { GATEHOUSE__LISTEN__PORT: String(port) }, timeoutMs: 90_000 });
    const starting = serve.logs.find((l) => String(l["msg"]).startsWith("starting on config"));
    assert.equal(starting?.["config"], EXAMPLE_CONFIG, JSON.stringify(serve.logs));
    assert.equal(serve.logs.find((l) => l["msg"] === "gatehouse listening")?.["config"], EXAMPLE_CONFIG);
    const said = warnings(serve.logs);
    assert.ok(said.some((w) => w.startsWith(EXAMPLE_FILE_WARNING) && w.includes(EXAMPLE_CONFIG)), said.join("\n"));
    assert.ok(said.some((w) => w.startsWith(EXAMPLE_TOKEN_WARNING)), said.join("\n"));
    assert.ok(!JSON.stringify(serve.logs).includes("change-me-to-a-long-random-token"), "the token itself is not logged");
    // The example's ./data/ is where `npm start` runs, as DESIGN §1 has it.
    assert.ok(existsSync(join(cwd, "data", "gatehouse.db")));
  }));

test("with a config and a token of its own, start-up names the file and warns about nothing", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start();
    const starting = svc.logs.lines.find((l) => String(l["msg"]).startsWith("starting on config"));
    assert.equal(starting?.["config"], cfg.configPath);
    assert.equal(starting?.["level"], 30);
    assert.deepEqual(warnings(svc.logs.lines), []);
  }));

test("an own config that keeps an example token is warned about at start-up, naming only the token's place", () =>
  withServiceDir({ register: { authTokens: ["change-me-please"] } }, async ({ start }) => {
    const svc = await start();
    assert.equal(countLogs(svc.logs, EXAMPLE_TOKEN_WARNING), 1, svc.logs.text());
    assert.equal(countLogs(svc.logs, EXAMPLE_FILE_WARNING), 0);
    assert.ok(!svc.logs.text().includes("change-me-please"));
  }));

test("register.secure false on a listener beyond loopback is warned about at start-up and by check-config", async () => {
  const cases: [Record<string, unknown>, boolean][] = [
    [{ listen: { host: "0.0.0.0", port: 0 }, register: { secure: false } }, true],
    [{ listen: { host: "192.0.2.10", port: 0 }, register: { secure: false } }, true],
    [{ listen: { host: "0.0.0.0", port: 0 }, register: { secure: true } }, false],
    [{ listen: { host: "127.0.0.1", port: 0 }, register: { secure: false } }, false],
    [{ listen: { host: "::1", port: 0 }, register: { secure: false } }, false],
  ];
  for (const [overrides, warned] of cases) {
    const cfg = createConfigDir(overrides);
    try {
      const cli = captureIo();
      assert.equal(await runCli(["check-config", "--config", cfg.configPath], cli.io), 0, "a valid file is valid: exit 0");
      const said = cli.err.some((line) => line.startsWith(`warning: ${PLAIN_HTTP_WARNING.slice("config warning: ".length)}`));
      assert.equal(said, warned, `${JSON.stringify(overrides)}: ${cli.err.join("\n")}`);
    } finally {
      cfg.remove();
    }
  }
  await withServiceDir({ listen: { host: "0.0.0.0", port: 0 }, register: { secure: false } }, async ({ start }) => {
    // Listens on loopback for the test; the warning is about what the file asks for.
    const svc = await start({ listen: { host: "127.0.0.1", port: 0 } });
    assert.equal(countLogs(svc.logs, PLAIN_HTTP_WARNING), 1, svc.logs.text());
  });
});

test("admin commands print the warnings to stderr, keeping stdout to their output", async () => {
  const cfg = createConfigDir({ register: { authTokens: ["change-me-to-a-long-random-token"] } });
  try {
    const run = async (...args: string[]) => {
      const io = captureIo();
      const code = await runCli([...args, "--config", cfg.configPath], io.io);
      return { code, ...io };
    };
    const created = await run("keys", "create", "k");
    assert.equal(created.code, 0, created.err.join("\n"));
    assert.equal(created.out.length, 1);
    const listed = await run("keys", "list");
    assert.deepEqual(listed.out, [`${created.out[0]!.split("/")[0]}\tk`]);
    assert.equal(listed.err.length, 1, listed.err.join("\n"));
    assert.match(listed.err[0]!, /^gatehouse: warning: register\.authTokens\[0\] is an example token/);
    assert.ok(!listed.err[0]!.includes("change-me-to-a-long-random-token"));
  } finally {
    cfg.remove();
  }
});

test("check-config on the embedded example exits 0 with both warnings on stderr", async () => {
  const cwd = mkdtempSync(join(tmpdir(), "gatehouse-example-"));
  try {
    const checked = await runGatehouse(["check-config"], { cwd });
    assert.equal(checked.code, 0, checked.err.join("\n"));
    assert.equal(checked.out[0], `config ok: ${EXAMPLE_CONFIG}`);
    assert.ok(checked.err.some((l) => l.startsWith("warning: running on the example config")), checked.err.join("\n"));
    assert.ok(checked.err.some((l) => l.startsWith("warning: register.authTokens[0] is an example token")), checked.err.join("\n"));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
