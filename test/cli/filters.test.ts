import { test } from "node:test";
import assert from "node:assert/strict";
import { cli, createCliHarness } from "../helpers/cli.ts";

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
