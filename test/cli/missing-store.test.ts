import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli } from "../../src/cli/index.ts";
import { pgSchema } from "../store/fixture.ts";
import { captureIo, createConfigDir } from "../helpers/service.ts";

// DESIGN §1: a listing command on a store that does not exist says so and exits 1 instead of
// creating an empty one; commands that write create and migrate it as `serve` does.

const LISTINGS = [["users", "list"], ["pending", "list"], ["keys", "list"], ["invites", "list"]];
// Commands that act on something that must already be stored: nothing to act on without a store.
const ON_EXISTING = [["users", "delete", "nobody"], ["users", "provision", "nobody"], ["keys", "delete", "nope"], ["invites", "revoke", "nope"], ["pending", "resend", "nobody"]];

async function run(args: string[], configPath: string) {
  const io = captureIo();
  const code = await runCli([...args, "--config", configPath], io.io);
  return { code, out: io.out, err: io.err };
}

test("listing commands on a SQLite store that does not exist exit 1 naming its path, and create neither file nor directory", async () => {
  const cfg = createConfigDir({ storage: "sqlite:./not-yet/gatehouse.db" });
  try {
    const where = join(cfg.dir, "not-yet", "gatehouse.db");
    for (const args of [...LISTINGS, ...ON_EXISTING]) {
      const result = await run(args, cfg.configPath);
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.err.join("\n")}`);
      assert.deepEqual(result.out, [], args.join(" "));
      assert.equal(result.err.length, 1, result.err.join("\n"));
      assert.ok(result.err[0]!.startsWith(`gatehouse: no store at ${where} (storage in ${cfg.configPath})`), result.err[0]);
      assert.ok(!existsSync(join(cfg.dir, "not-yet")), `${args.join(" ")} created the store's directory`);
    }
  } finally {
    cfg.remove();
  }
});

test("keys create and invites create create and migrate a missing store; then the listings work on it", async () => {
  const cfg = createConfigDir({ storage: "sqlite:./fresh/gatehouse.db" });
  try {
    const key = await run(["keys", "create", "first"], cfg.configPath);
    assert.equal(key.code, 0, key.err.join("\n"));
    assert.ok(existsSync(join(cfg.dir, "fresh", "gatehouse.db")));
    const listed = await run(["keys", "list"], cfg.configPath);
    assert.equal(listed.code, 0, listed.err.join("\n"));
    assert.deepEqual(listed.out, [`${key.out[0]!.split("/")[0]}\tfirst`]);
    for (const args of LISTINGS.filter(([noun]) => noun !== "keys")) {
      const result = await run(args, cfg.configPath);
      assert.equal(result.code, 0, `${args.join(" ")}: ${result.err.join("\n")}`);
      // Nothing listed: at most the listing's header line.
      assert.ok(result.out.length <= 1 && result.out.every((line) => line.startsWith("NAME\t")), `${args.join(" ")}: ${result.out.join("\n")}`);
    }
  } finally {
    cfg.remove();
  }
  const other = createConfigDir({ storage: "sqlite:./by-invite/gatehouse.db" });
  try {
    const invite = await run(["invites", "create"], other.configPath);
    assert.equal(invite.code, 0, invite.err.join("\n"));
    assert.equal((await run(["invites", "list"], other.configPath)).out.length, 1);
  } finally {
    other.remove();
  }
});

test("a SQLite file without gatehouse's tables counts as no store, and is left as it was", async () => {
  const cfg = createConfigDir();
  try {
    const file = join(cfg.dir, "gatehouse.db");
    writeFileSync(file, "");
    const result = await run(["users", "list"], cfg.configPath);
    assert.equal(result.code, 1, result.err.join("\n"));
    assert.match(result.err.join("\n"), /no store at .*gatehouse\.db/);
    assert.equal(statSync(file).size, 0, "no tables were made in it");
    assert.deepEqual(readdirSync(cfg.dir).filter((f) => f.startsWith("gatehouse.db")), ["gatehouse.db"]);
  } finally {
    cfg.remove();
  }
});

test("on PostgreSQL, a schema without gatehouse's tables counts as no store until a writing command creates it", async (t) => {
  const schema = await pgSchema();
  if (!schema) {
    t.skip("GATEHOUSE_TEST_PG is not set: PostgreSQL not tested");
    return;
  }
  const cfg = createConfigDir({ storage: schema.url });
  try {
    const tables = async () => {
      const client = await schema.connect();
      try {
        return (await client.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")).rows.length;
      } finally {
        await client.end();
      }
    };
    for (const args of LISTINGS) {
      const result = await run(args, cfg.configPath);
      assert.equal(result.code, 1, `${args.join(" ")}: ${result.err.join("\n")}`);
      assert.match(result.err[0]!, /^gatehouse: no store at postgres:\/\//);
    }
    assert.equal(await tables(), 0, "the listings made no table");
    const key = await run(["keys", "create", "pg"], cfg.configPath);
    assert.equal(key.code, 0, key.err.join("\n"));
    assert.ok((await tables()) > 0);
    assert.deepEqual((await run(["keys", "list"], cfg.configPath)).out, [`${key.out[0]!.split("/")[0]}\tpg`]);
  } finally {
    cfg.remove();
    await schema.drop();
  }
});
