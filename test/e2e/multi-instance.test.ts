import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { runCli } from "../../src/cli/index.ts";
import { AUTH_TOKEN, registration } from "../helpers/harness.ts";
import type { ServeProcess } from "../helpers/process.ts";
import { captureIo, freePort, postRegistrationTo, withServiceDir } from "../helpers/service.ts";

const PG = process.env["GATEHOUSE_TEST_PG"];
const REDIS = process.env["GATEHOUSE_TEST_REDIS"];

if (!PG || !REDIS) {
  test("two gatehouse instances on one PostgreSQL and one Redis", { skip: "GATEHOUSE_TEST_PG and GATEHOUSE_TEST_REDIS must both be set" }, () => {});
} else {
  test("two gatehouse instances on one PostgreSQL and one Redis behave as one service", async (t) => {
    await withServiceDir({}, async ({ configDir, spawn, own, smtp: { sink: smtp } }) => {
      const schema = `gh_multi_${randomBytes(4).toString("hex")}`;
      const admin = own(new pg.Client({ connectionString: PG }), (client) => client.end());
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      own(schema, (name) => admin.query(`DROP SCHEMA ${name} CASCADE`));
      const storage = `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
      // Unique per run, so the shared Redis counts of earlier runs cannot interfere.
      const net = `10.${randomBytes(1)[0]! % 200}.${randomBytes(1)[0]}`;
      const ports = [await freePort(), await freePort()];
      const dirs = ports.map((port) =>
        configDir({
          listen: { host: "127.0.0.1", port },
          storage,
          redis: REDIS,
          publicUrl: "http://gatehouse.test",
          register: { secure: false, authTokens: [AUTH_TOKEN], throttleSeconds: 60, whitelist: [`${net}.128/25`] },
          mail: { from: "gatehouse <noreply@gatehouse.test>", transport: { host: "127.0.0.1", port: smtp.port, secure: false, ignoreTLS: true } },
        }),
      );
      const instances: ServeProcess[] = [];
      for (const dir of dirs) instances.push(await spawn(["--config", dir.configPath]));
      const [a, b] = ports.map((port) => `http://127.0.0.1:${port}`) as [string, string];
      const urls = [a, b];
      let mailsExpected = 0;

      await t.test("a second registration from one end-user IP is throttled on the other instance", async () => {
        const ip = `${net}.7`;
        const first = await postRegistrationTo(a, registration({ ip }));
        assert.equal(first.status, 200);
        const second = await postRegistrationTo(b, registration({ ip }));
        assert.equal(second.status, 503);
        mailsExpected += 1;
      });

      await t.test("a username is taken once under concurrent registrations spread over both instances", async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => postRegistrationTo(urls[i % 2]!, registration({ username: "contested", ip: `${net}.${130 + i}` }))),
        );
        assert.equal(results.filter((r) => r.status === 200).length, 1);
        assert.ok(results.every((r) => r.status === 200 || r.status === 401 || r.status === 409), results.map((r) => r.status).join(","));
        mailsExpected += 1;
      });

      await t.test("a mail address is taken once under concurrent registrations spread over both instances", async () => {
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => postRegistrationTo(urls[i % 2]!, registration({ mail: "shared@example.org", ip: `${net}.${160 + i}` }))),
        );
        assert.equal(results.filter((r) => r.status === 200).length, 1);
        assert.ok(results.every((r) => r.status === 200 || r.status === 409), results.map((r) => r.status).join(","));
        mailsExpected += 1;
      });

      await t.test("a token issued on one instance completes on the other", async () => {
        const issued = await postRegistrationTo(a, registration({ username: "crossover", ip: `${net}.200` }));
        assert.equal(issued.status, 200);
        mailsExpected += 1;
        const done = await fetch(`${b}/register_account/verify/${issued.text}`, { method: "POST", headers: { accept: "application/json" } });
        assert.equal(done.status, 200);
        assert.deepEqual(await done.json(), { username: "crossover", alreadyActive: false });
        const again = await fetch(`${a}/register_account/verify/${issued.text}`, { method: "POST", headers: { accept: "application/json" } });
        assert.deepEqual(await again.json(), { username: "crossover", alreadyActive: true });
      });

      await t.test("a one-use invite is accepted once under concurrent accepts spread over both instances", async () => {
        const io = captureIo();
        assert.equal(await runCli(["keys", "create", "multi", "--config", dirs[0]!.configPath], io.io), 0);
        const key = io.out[0]!;
        const created = await fetch(`${b}/invites_api?key=${encodeURIComponent(key)}`);
        assert.equal(created.status, 201);
        const token = (await created.json() as { id: string }).id;
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            fetch(`${urls[i % 2]}/api/invite/${token}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ name: `invitee${i}`, password: "long enough password" }),
            }).then((r) => r.status),
          ),
        );
        assert.equal(results.filter((s) => s === 204).length, 1, results.join(","));
        assert.ok(results.every((s) => s === 204 || s === 404 || s === 410), results.join(","));
      });

      await t.test("each queued mail is sent exactly once", async () => {
        await smtp.waitForMail(mailsExpected, 15_000);
        // Give a double send every chance to show up before counting.
        await new Promise((r) => setTimeout(r, 2500));
        const recipients = smtp.received.flatMap((m) => m.to);
        assert.equal(recipients.length, mailsExpected, recipients.join(","));
        assert.equal(new Set(recipients).size, recipients.length);
      });

      await t.test("SIGTERM stops each instance cleanly", async () => {
        for (const instance of instances.splice(0)) assert.equal(await instance.stop(), 0);
      });
    }, { smtp: true });
  });
}

