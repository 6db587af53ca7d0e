import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { PACKAGE_ROOT } from "../../src/config.ts";
import { gatehouseArgs } from "../helpers/process.ts";
import { createConfigDir } from "../helpers/service.ts";

test("serve on a port that is in use exits 1 with the reason instead of hanging", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", () => resolve()));
  const port = (busy.address() as AddressInfo).port;
  const cfg = createConfigDir({ listen: { host: "127.0.0.1", port } });
  const child = spawn(process.execPath, gatehouseArgs("serve", "--config", cfg.configPath), {
    cwd: PACKAGE_ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const code = await Promise.race([
      exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still running after 15 s\n${stderr}`)), 15_000).unref()),
    ]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /EADDRINUSE/);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    await new Promise<void>((resolve) => busy.close(() => resolve()));
    cfg.remove();
  }
});
