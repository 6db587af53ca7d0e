import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../../src/cli/index.ts";
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
