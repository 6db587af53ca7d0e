import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { runCli } from "../src/cli/index.ts";
import { PACKAGE_ROOT } from "../src/config.ts";
import { createHarness, postRegistration, registerAndVerify, registration, type Harness } from "./helpers/harness.ts";
import { captureIo, createConfigDir } from "./helpers/service.ts";

const FILTERS = { register: { blacklist: ["10.0.0.0/8"], filteredMails: ["@bad\\.tld$"] } };

/** The CLI lists pending registrations as of the wall clock, so the harness clock starts there too. */
async function createCliHarness(): Promise<Harness> {
  const h = await createHarness(FILTERS);
  h.clock.t = Date.now();
  return h;
}

async function cli(h: Harness, ...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const io = captureIo();
  const code = await runCli([...args, "--config", h.configPath], io.io);
  return { code, out: io.out, err: io.err };
}

/** NAME, IP, CREATED, EXPIRES and the mail status, which is the last column. */
function columns(line: string): string[] {
  const cells = line.split("\t");
  return [...cells.slice(0, 4), cells[cells.length - 1]!];
}

test("users list prints NAME, CREATED and MAIL separated by tabs, sorted by name", async () => {
  const h = await createCliHarness();
  try {
    const created = new Date(h.clock.now()).toISOString();
    await registerAndVerify(h, { username: "Carol" });
    await registerAndVerify(h, { username: "bob" });
    const { code, out, err } = await cli(h, "users", "list");
    assert.equal(code, 0, err.join("\n"));
    // Further columns (e.g. how the account came to be) may follow the three the contract names.
    assert.deepEqual(out.map((line) => line.split("\t").slice(0, 3)), [["bob", created, "mail"], ["carol", created, "mail"]]);
  } finally {
    await h.close();
  }
});

test("users delete removes the account and frees its mail address for a new registration", async () => {
  const h = await createCliHarness();
  try {
    await registerAndVerify(h, { username: "dora", mail: "dora.cli@example.org" });
    const taken = await postRegistration(h, registration({ username: "dora2", mail: "dora.cli@example.org" }));
    assert.equal(taken.status, 409, "the mail belongs to dora");

    const { code, out, err } = await cli(h, "users", "delete", "Dora");
    assert.equal(code, 0, err.join("\n"));
    assert.deepEqual(out, ["deleted dora"]);
    assert.deepEqual((await cli(h, "users", "list")).out, []);

    const again = await postRegistration(h, registration({ username: "dora2", mail: "dora.cli@example.org" }));
    assert.equal(again.status, 200, again.text);
  } finally {
    await h.close();
  }
});

test("users delete of an unknown name exits 1 with a message on stderr", async () => {
  const h = await createCliHarness();
  try {
    const { code, out, err } = await cli(h, "users", "delete", "nobody");
    assert.equal(code, 1);
    assert.deepEqual(out, []);
    assert.equal(err.length, 1);
    assert.match(err[0]!, /^gatehouse: .*nobody/);
  } finally {
    await h.close();
  }
});

test("pending list shows name, ip and the mail status", async () => {
  const h = await createCliHarness();
  try {
    const res = await postRegistration(h, registration({ username: "Eve", ip: "198.51.100.77" }));
    assert.equal(res.status, 200, res.text);
    const created = new Date(h.clock.now()).toISOString();
    const expires = new Date(h.clock.now() + h.config.register.pendingTtlSeconds * 1000).toISOString();

    const queued = await cli(h, "pending", "list");
    assert.equal(queued.code, 0, queued.err.join("\n"));
    assert.deepEqual(queued.out.map(columns), [["eve", "198.51.100.77", created, expires, "queued"]]);

    await h.outbox.drain();
    const sent = await cli(h, "pending", "list");
    assert.deepEqual(sent.out.map(columns), [["eve", "198.51.100.77", created, expires, "sent"]]);

    // Verified, it is an account and no longer pending.
    assert.equal((await h.http.post(`/register_account/verify/${res.text}`)).status, 200);
    assert.deepEqual((await cli(h, "pending", "list")).out, []);
  } finally {
    await h.close();
  }
});

test("filters test names the blacklist range and the mail filter that refuse a registration", async () => {
  const h = await createCliHarness();
  try {
    const { code, out, err } = await cli(h, "filters", "test", "--ip", "10.1.2.3", "--mail", "x@bad.tld");
    assert.equal(code, 0, err.join("\n"));
    const text = out.join("\n");
    assert.ok(out.some((l) => l.startsWith("refused:") && l.includes("10.0.0.0/8")), text);
    assert.ok(out.some((l) => l.startsWith("refused:") && l.includes(JSON.stringify("@bad\\.tld$"))), text);
    assert.ok(!text.includes("allowed"), text);
  } finally {
    await h.close();
  }
});

test("filters test says allowed when no list or filter refuses", async () => {
  const h = await createCliHarness();
  try {
    const { code, out, err } = await cli(h, "filters", "test", "--ip", "192.0.2.1", "--mail", "x@good.tld");
    assert.equal(code, 0, err.join("\n"));
    assert.equal(out.length, 1, out.join("\n"));
    assert.match(out[0]!, /^allowed/);
  } finally {
    await h.close();
  }
});

test("filters test without --ip is a usage error (exit 2)", async () => {
  const h = await createCliHarness();
  try {
    const { code, err } = await cli(h, "filters", "test", "--mail", "x@bad.tld");
    assert.equal(code, 2);
    assert.match(err.join("\n"), /--ip/);
  } finally {
    await h.close();
  }
});

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

test("serve on a port that is in use exits 1 with the reason instead of hanging", async () => {
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", () => resolve()));
  const port = (busy.address() as AddressInfo).port;
  const cfg = createConfigDir({ listen: { host: "127.0.0.1", port } });
  const child = spawn(process.execPath, ["bin/gatehouse.js", "serve", "--config", cfg.configPath], {
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
