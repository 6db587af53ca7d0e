import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { registration } from "../helpers/harness.ts";
import { editConfig, postRegistrationTo, waitFor, withServiceDir, type TestService } from "../helpers/service.ts";

/** Mounts a 4 MiB tmpfs for `body`; answers the reason when this machine does not let the test mount. */
async function withSmallFilesystem(body: (mount: string) => Promise<void>): Promise<string | null> {
  const mount = mkdtempSync(join(tmpdir(), "gatehouse-full-"));
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mount], { encoding: "utf8" });
  if (mounted.status !== 0) {
    rmdirSync(mount);
    return `cannot mount a tmpfs here (${(mounted.stderr || String(mounted.error)).trim()}); needs root or CAP_SYS_ADMIN`;
  }
  try {
    await body(mount);
  } finally {
    spawnSync("umount", ["-l", mount]);
    rmdirSync(mount);
  }
  return null;
}

/** Writes a file until the filesystem says ENOSPC, in big then small pieces, so not a page is left. */
function fill(file: string): void {
  const fd = openSync(file, "w");
  try {
    for (const size of [256 * 1024, 4096, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function health(svc: TestService): Promise<{ status: number; retryAfter: string | null; body: unknown }> {
  const res = await fetch(`${svc.service.url}/healthz`);
  return { status: res.status, retryAfter: res.headers.get("retry-after"), body: await res.json() };
}

/** What a refusal must not change: every pending registration, account and queued item. */
async function snapshot(svc: TestService): Promise<unknown> {
  const store = svc.service.ctx.store;
  return { pending: await store.listPending(Date.now()), accounts: await store.listAccounts(), depth: await store.outboxDepth() };
}

test("on a full disk a registration is 503 with a reason and Retry-After, nothing changes, /healthz is 503; freeing space recovers both", async (t) => {
  const skipped = await withSmallFilesystem((mount) =>
    withServiceDir({}, async ({ cfg, start }) => {
      // The store alone is on the small filesystem; the mail files are not.
      cfg.replace(editConfig(cfg.raw, (c) => void (c.storage = `sqlite:${join(mount, "data", "gatehouse.db")}`)));
      const svc = await start();
      assert.deepEqual(await health(svc), { status: 200, retryAfter: null, body: { status: "ok" } });
      const before = registration({ username: "olga" });
      assert.equal((await postRegistrationTo(svc.service.url, before)).status, 200);
      await waitFor(async () => (await svc.service.ctx.store.listPending(Date.now()))[0]?.mailStatus === "sent", { what: "the first mail" });

      const filler = join(mount, "filler");
      fill(filler);
      const state = await snapshot(svc);
      const store = svc.service.ctx.store;
      const calls: string[] = [];
      for (const name of ["insertPending", "probeWrite"] as const) {
        const original = store[name].bind(store) as (...args: unknown[]) => Promise<unknown>;
        (store as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
          calls.push(name);
          return original(...args);
        };
      }

      // The first write that meets the full disk: refused with a reason, as a 503, never a 500.
      const refused = await postRegistrationTo(svc.service.url, registration({ username: "pavel" }));
      assert.deepEqual(refused, { status: 503, text: "the store is full; try again later" });
      const json = await fetch(`${svc.service.url}/register_account/`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(registration({ username: "quinn" })),
      });
      assert.equal(json.status, 503);
      assert.equal(json.headers.get("retry-after"), "60");
      assert.deepEqual(await json.json(), { error: "STORAGE_FULL", message: "the store is full; try again later" });
      assert.deepEqual(calls, ["insertPending", "probeWrite"], "the second was refused by a probe, before its password was hashed");
      assert.ok(!svc.logs.lines.some((l) => l["msg"] === "unexpected error"), "no 500 on the way");
      assert.ok(svc.logs.lines.some((l) => l["level"] === 50 && l["msg"] === "store is full"));

      assert.deepEqual(await health(svc), { status: 503, retryAfter: "60", body: { status: "unavailable", reason: "store is full" } });
      assert.deepEqual(await snapshot(svc), state, "nothing stored changed");

      rmSync(filler);
      assert.deepEqual(await health(svc), { status: 200, retryAfter: null, body: { status: "ok" } });
      const after = await postRegistrationTo(svc.service.url, registration({ username: "pavel" }));
      assert.equal(after.status, 200, after.text);
      await waitFor(async () => (await svc.service.ctx.store.listPending(Date.now())).every((p) => p.mailStatus === "sent"), {
        what: "the mail of the registration after recovery",
      });
    }),
  );
  if (skipped) t.skip(skipped);
});

test("/healthz writes through its probe on PostgreSQL too: 200 on a healthy server", async (t) => {
  const PG = process.env["GATEHOUSE_TEST_PG"];
  if (!PG) return t.skip("GATEHOUSE_TEST_PG not set");
  const schema = `gh_health_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  try {
    const storage = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    await withServiceDir({ storage }, async ({ start }) => {
      const svc = await start();
      assert.deepEqual(await health(svc), { status: 200, retryAfter: null, body: { status: "ok" } });
      const { rows } = await admin.query(`SELECT value FROM ${schema}.meta WHERE key = 'heartbeat'`);
      assert.equal(rows.length, 1, "the probe wrote its heartbeat row");
      const first = Number(rows[0].value);
      assert.deepEqual(await health(svc), { status: 200, retryAfter: null, body: { status: "ok" } });
      const again = await admin.query(`SELECT count(*)::int AS n, max(value) AS value FROM ${schema}.meta WHERE key = 'heartbeat'`);
      assert.equal(again.rows[0].n, 1, "one heartbeat row, updated in place");
      assert.ok(Number(again.rows[0].value) >= first);
    });
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
});
