import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../../src/cli/index.ts";
import { PACKAGE_ROOT } from "../../src/config.ts";
import { captureIo } from "../helpers/service.ts";

test("an unknown command is a usage error (exit 2)", async () => {
  const io = captureIo();
  assert.equal(await runCli(["frobnicate"], io.io), 2);
  assert.match(io.err.join("\n"), /frobnicate/);
});

test("no arguments prints the usage and exits 2", async () => {
  const io = captureIo();
  assert.equal(await runCli([], io.io), 2);
  assert.match([...io.out, ...io.err].join("\n"), /Usage: gatehouse/);
});

test("--help prints the usage and exits 0", async () => {
  const io = captureIo();
  assert.equal(await runCli(["--help"], io.io), 0);
  const text = io.out.join("\n");
  assert.match(text, /Usage: gatehouse/);
  for (const command of ["serve", "check-config", "users", "pending", "filters"]) assert.match(text, new RegExp(`\\b${command}\\b`));
  assert.deepEqual(io.err, []);
});

test("--version and -V print the package's version and exit 0", async () => {
  const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+/);
  for (const flag of ["--version", "-V"]) {
    const io = captureIo();
    assert.equal(await runCli([flag], io.io), 0, flag);
    assert.deepEqual(io.out, [version], flag);
    assert.deepEqual(io.err, [], flag);
  }
});
