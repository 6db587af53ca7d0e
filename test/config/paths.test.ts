import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { EXAMPLE_CONFIG, loadConfig, resolveConfigPath } from "../../src/config.ts";
import { runGatehouse } from "../helpers/cli.ts";
import { AUTH_TOKEN, registration } from "../helpers/harness.ts";
import { editConfig, postRegistrationTo, waitFor, withServiceDir } from "../helpers/service.ts";

// DESIGN §1: relative paths inside a config file are relative to that file, never to the working
// directory; the embedded example's `./data/` stays where `npm start` is run.

/** Two sibling directories: one holding a config file, the other where the command is run. */
function twoDirs(config: Record<string, unknown>): { root: string; configDir: string; elsewhere: string; remove(): void } {
  const root = mkdtempSync(join(tmpdir(), "gatehouse-paths-"));
  const configDir = join(root, "site");
  const elsewhere = join(root, "elsewhere");
  mkdirSync(configDir);
  mkdirSync(elsewhere);
  writeFileSync(join(configDir, "config.json"), JSON.stringify(config, null, 2));
  return { root, configDir, elsewhere, remove: () => rmSync(root, { recursive: true, force: true }) };
}

const RELATIVE = { storage: "sqlite:./db/gh.db", register: { authTokens: [AUTH_TOKEN] }, mail: { transport: "dir:./mail" } };

test("run from another directory with --config ../site/config.json, the CLI makes and finds the store beside the config", async () => {
  const dirs = twoDirs(RELATIVE);
  try {
    const created = await runGatehouse(["keys", "create", "beside", "--config", "../site/config.json"], { cwd: dirs.elsewhere });
    assert.equal(created.code, 0, created.err.join("\n"));
    assert.ok(existsSync(join(dirs.configDir, "db", "gh.db")), "the store is beside the config file");
    assert.deepEqual(readdirSync(dirs.elsewhere), [], "nothing was created in the working directory");

    const id = created.out[0]!.split("/")[0]!;
    const listed = await runGatehouse(["keys", "list", "--config", join("..", "site", "config.json")], { cwd: dirs.elsewhere });
    assert.equal(listed.code, 0, listed.err.join("\n"));
    assert.deepEqual(listed.out, [`${id}\tbeside`]);
    // From the config's own directory, the same store.
    const fromSite = await runGatehouse(["keys", "list", "--config", "config.json"], { cwd: dirs.configDir });
    assert.deepEqual(fromSite.out, [`${id}\tbeside`]);
  } finally {
    dirs.remove();
  }
});

test("GATEHOUSE_CONFIG names the config file, relative to the working directory; --config wins over it", async () => {
  const dirs = twoDirs(RELATIVE);
  try {
    const created = await runGatehouse(["keys", "create", "via-env"], { cwd: dirs.elsewhere, env: { GATEHOUSE_CONFIG: "../site/config.json" } });
    assert.equal(created.code, 0, created.err.join("\n"));
    assert.ok(existsSync(join(dirs.configDir, "db", "gh.db")));
    const checked = await runGatehouse(["check-config"], { cwd: dirs.elsewhere, env: { GATEHOUSE_CONFIG: "../site/config.json" } });
    assert.equal(checked.out[0], `config ok: ${join(dirs.configDir, "config.json")}`);
  } finally {
    dirs.remove();
  }
  assert.equal(resolveConfigPath("b.json", "/srv", { GATEHOUSE_CONFIG: "a.json" }), "/srv/b.json");
  assert.equal(resolveConfigPath(undefined, "/srv", { GATEHOUSE_CONFIG: "conf/a.json" }), "/srv/conf/a.json");
  assert.equal(resolveConfigPath(undefined, "/nonexistent-dir", {}), EXAMPLE_CONFIG);
});

test("a config file's defaults are relative to its directory too; absolute paths and paths from the environment stay as given", () => {
  const dirs = twoDirs({ register: { authTokens: [AUTH_TOKEN] } });
  try {
    const file = join(dirs.configDir, "config.json");
    const defaults = loadConfig(file, {});
    assert.equal(defaults.storage, `sqlite:${join(dirs.configDir, "data", "gatehouse.db")}`);
    assert.equal(defaults.mail.transport, `dir:${join(dirs.configDir, "data", "mail")}`);

    writeFileSync(file, JSON.stringify({ storage: "sqlite:/var/lib/gh.db", register: { authTokens: [AUTH_TOKEN] }, mail: { transport: "dir:../spool" } }));
    const given = loadConfig(file, {});
    assert.equal(given.storage, "sqlite:/var/lib/gh.db");
    assert.equal(given.mail.transport, `dir:${join(dirs.root, "spool")}`);

    // A variable is set in the shell the command runs in: its path is the shell's.
    const env = loadConfig(file, { GATEHOUSE__STORAGE: "sqlite:./from-env.db", GATEHOUSE__MAIL__TRANSPORT: "dir:./env-mail" });
    assert.equal(env.storage, "sqlite:./from-env.db");
    assert.equal(env.mail.transport, "dir:./env-mail");
    // Not a path at all: left alone.
    const smtp = loadConfig(file, { GATEHOUSE__MAIL__TRANSPORT: "smtp://mail.example:25" });
    assert.equal(smtp.mail.transport, "smtp://mail.example:25");
  } finally {
    dirs.remove();
  }
});

test("the embedded example's paths stay relative to the working directory (npm start puts ./data/ there)", () => {
  const config = loadConfig(EXAMPLE_CONFIG, {});
  assert.equal(config.storage, "sqlite:./data/gatehouse.db");
  assert.equal(config.mail.transport, "dir:./data/mail");
});

test("the running service writes its store and .eml files beside a config with relative paths, whatever its working directory", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    assert.notEqual(process.cwd(), cfg.dir);
    cfg.replace(editConfig(cfg.raw, (c) => {
      c.storage = "sqlite:./state/gh.db";
      c.mail.transport = "dir:./outgoing";
    }));
    const svc = await start();
    assert.equal((await postRegistrationTo(svc.service.url, registration())).status, 200);
    await svc.service.outbox.drain();
    await waitFor(() => existsSync(join(cfg.dir, "outgoing")) && readdirSync(join(cfg.dir, "outgoing")).some((f) => f.endsWith(".eml")), {
      what: "a mail in the directory beside the config",
    });
    assert.ok(existsSync(join(cfg.dir, "state", "gh.db")));
    assert.ok(!existsSync(join(process.cwd(), "outgoing")) && !existsSync(join(process.cwd(), "state")), `nothing under ${relative(cfg.dir, process.cwd())}`);
  }));
