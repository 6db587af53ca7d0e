import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../src/config.ts";
import { spawnServe } from "./helpers/process.ts";
import { registration } from "./helpers/harness.ts";
import { createConfigDir, freePort, postRegistrationTo, waitFor } from "./helpers/service.ts";

// What production runs: `npm run build`'s dist/ through bin/gatehouse.js. The build goes to a copy
// of the package whose src/ is removed afterwards, so nothing here can fall back on the sources,
// and the working tree's own dist/ is left as it was.

const RECORD_MODULES = join(PACKAGE_ROOT, "test/fixtures/record-modules.cjs");
const VERSION = (JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
/** Packages only a development checkout has, or only a config that names PostgreSQL or Redis needs. */
const NOT_FOR_SQLITE = ["tsx", "esbuild", "pg", "ioredis"];

let pkg = "";

before(() => {
  pkg = mkdtempSync(join(tmpdir(), "gatehouse-dist-"));
  for (const file of ["package.json", "tsconfig.json", "tsconfig.build.json", "config.example.json"]) {
    copyFileSync(join(PACKAGE_ROOT, file), join(pkg, file));
  }
  for (const dir of ["src", "bin"]) cpSync(join(PACKAGE_ROOT, dir), join(pkg, dir), { recursive: true });
  symlinkSync(join(PACKAGE_ROOT, "templates"), join(pkg, "templates"));
  symlinkSync(join(PACKAGE_ROOT, "static"), join(pkg, "static"));
  symlinkSync(join(PACKAGE_ROOT, "node_modules"), join(pkg, "node_modules"));
  const build = spawnSync("npm", ["run", "build"], { cwd: pkg, encoding: "utf8", timeout: 300_000 });
  assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}${build.stderr}`);
  rmSync(join(pkg, "src"), { recursive: true });
});

after(() => {
  if (pkg) rmSync(pkg, { recursive: true, force: true });
});

/** Runs the built `gatehouse ARGS` in the copy, with the module recorder preloaded. */
function runBuilt(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ["--require", RECORD_MODULES, join(pkg, "bin/gatehouse.js"), ...args], {
    cwd: options.cwd ?? pkg,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    timeout: 60_000,
  });
}

/** The npm packages a child loaded, as record-modules.cjs printed them on its way out. */
function loadedPackages(stderr: string): string[] {
  const line = stderr.split("\n").find((l) => l.startsWith("loaded packages: "));
  assert.ok(line, `the child printed no module list; its stderr:\n${stderr}`);
  return JSON.parse(line.slice("loaded packages: ".length)) as string[];
}

test("the built gatehouse --version prints the package's version", () => {
  const result = runBuilt(["--version"]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), VERSION);
});

test("the built check-config validates the example config without loading tsx, esbuild, pg or ioredis", () => {
  const result = runBuilt(["check-config"]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^config ok: ${join(pkg, "config.example.json")}$`, "m"));
  const loaded = loadedPackages(result.stderr);
  assert.ok(loaded.includes("ajv"), `the recorder sees what check-config loads: ${loaded.join(", ")}`);
  assert.deepEqual(loaded.filter((p) => NOT_FOR_SQLITE.includes(p)), []);
});

test("the built serve on SQLite registers, mails and shows the verify page, never loading tsx, esbuild, pg or ioredis", async () => {
  const port = await freePort();
  const cfg = createConfigDir({ listen: { host: "127.0.0.1", port } });
  try {
    const serve = await spawnServe(["--config", cfg.configPath], { entry: ["--require", RECORD_MODULES, join(pkg, "bin/gatehouse.js")] });
    let code: number | null;
    try {
      const base = `http://127.0.0.1:${port}`;
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200, await health.text());
      // An accepted registration hashes the password in dist/domain/hash-worker.js, compiled from the plain-JS source.
      const fields = registration();
      const registered = await postRegistrationTo(base, fields);
      assert.equal(registered.status, 200, registered.text);
      // The templates are found from dist/: the verify page, and the mail the outbox writes.
      const page = await fetch(`${base}/register_account/verify/${encodeURIComponent(registered.text.trim())}`);
      const html = await page.text();
      assert.equal(page.status, 200, html);
      assert.ok(html.includes(fields.username), "the confirm page names the account");
      const mails = await waitFor(() => {
        const files = existsSync(join(cfg.dir, "mail")) ? readdirSync(join(cfg.dir, "mail")).filter((f) => f.endsWith(".eml")) : [];
        return files.length > 0 ? files : null;
      }, { timeoutMs: 20_000, what: "the verification mail" });
      assert.equal(mails.length, 1);
    } finally {
      code = await serve.stop();
    }
    assert.equal(code, 0, serve.stderr.join(""));
    const loaded = loadedPackages(serve.stderr.join(""));
    assert.ok(loaded.includes("better-sqlite3"), `SQLite's driver is loaded: ${loaded.join(", ")}`);
    assert.deepEqual(loaded.filter((p) => NOT_FOR_SQLITE.includes(p)), []);
  } finally {
    cfg.remove();
  }
});

test("the built gatehouse loads ioredis when the config names Redis, and pg when it names PostgreSQL", async () => {
  // Nothing listens on these ports: the drivers are loaded on the way to the refused connection.
  const unused = await freePort();
  const port = await freePort();
  const withRedis = createConfigDir({ listen: { host: "127.0.0.1", port }, redis: `redis://127.0.0.1:${unused}` });
  const withPostgres = createConfigDir({ storage: `postgres://gatehouse@127.0.0.1:${unused}/gatehouse` });
  try {
    const serve = await spawnServe(["--config", withRedis.configPath], { entry: ["--require", RECORD_MODULES, join(pkg, "bin/gatehouse.js")] });
    assert.equal(await serve.stop(), 0, serve.stderr.join(""));
    const redisLoaded = loadedPackages(serve.stderr.join(""));
    assert.ok(redisLoaded.includes("ioredis"), `ioredis is loaded for redis: ${redisLoaded.join(", ")}`);
    assert.ok(!redisLoaded.includes("pg"), "pg is not loaded for a SQLite store");

    const keys = runBuilt(["keys", "create", "site", "--config", withPostgres.configPath]);
    assert.equal(keys.status, 1, `no PostgreSQL there, so the command fails: ${keys.stdout}${keys.stderr}`);
    const pgLoaded = loadedPackages(keys.stderr);
    assert.ok(pgLoaded.includes("pg"), `pg is loaded for a postgres:// store: ${pgLoaded.join(", ")}`);
    assert.ok(!pgLoaded.includes("ioredis"), "ioredis is not loaded without redis");
  } finally {
    withRedis.remove();
    withPostgres.remove();
  }
});

test("bin/gatehouse.js without a built dist/ says to build it and exits 1", () => {
  const bare = mkdtempSync(join(tmpdir(), "gatehouse-nodist-"));
  try {
    mkdirSync(join(bare, "bin"));
    copyFileSync(join(PACKAGE_ROOT, "bin/gatehouse.js"), join(bare, "bin/gatehouse.js"));
    copyFileSync(join(PACKAGE_ROOT, "package.json"), join(bare, "package.json"));
    const result = spawnSync(process.execPath, [join(bare, "bin/gatehouse.js"), "--version"], { encoding: "utf8" });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /dist\/ is not built; run `npm run build`/);
    assert.doesNotMatch(result.stderr, /at .*\(/, "a message, not a stack trace");
  } finally {
    rmSync(bare, { recursive: true, force: true });
  }
});

/** Every package name in an `npm ls --json` tree. */
function packageNames(tree: { dependencies?: Record<string, unknown> }, into = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(tree.dependencies ?? {})) {
    into.add(name);
    packageNames(child as { dependencies?: Record<string, unknown> }, into);
  }
  return into;
}

test("a production install (npm ls --omit=dev) has neither tsx nor esbuild; a development one has both", () => {
  const ls = (extra: string[]) => {
    const result = spawnSync("npm", ["ls", "--all", "--json", ...extra], { cwd: PACKAGE_ROOT, encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 0, result.stderr);
    return packageNames(JSON.parse(result.stdout) as { dependencies?: Record<string, unknown> });
  };
  const production = ls(["--omit=dev"]);
  assert.ok(production.has("koa") && production.has("better-sqlite3"), "the runtime dependencies are listed");
  // typescript is left out of this list: npm ls names it as i18next's optional peer whenever the
  // development tree has it, though a production install (`npm ci --omit=dev`) does not install it.
  assert.deepEqual(["tsx", "esbuild"].filter((p) => production.has(p)), []);
  const development = ls([]);
  assert.ok(development.has("tsx") && development.has("esbuild"), "the same walk finds them among the devDependencies");
});
