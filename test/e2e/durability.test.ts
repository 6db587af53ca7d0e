import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../../src/cli/index.ts";
import { registration } from "../helpers/harness.ts";
import type { ServeProcess } from "../helpers/process.ts";
import { captureIo, postRegistrationTo, waitFor, withServiceDir } from "../helpers/service.ts";

// DESIGN §3: on 200 the pending registration is stored, with its mail queued in the same
// transaction. So a process killed without warning (SIGKILL: no shutdown hook runs) may lose
// requests in flight, never one it answered 200.

const LOOPS = 6;
const KILL_AFTER = 40;

function listeningUrl(proc: ServeProcess): string {
  const line = proc.logs.find((l) => l["msg"] === "gatehouse listening");
  assert.ok(line && typeof line["url"] === "string", "the process logged where it listens");
  return line["url"] as string;
}

async function pendingList(configPath: string): Promise<Map<string, string>> {
  const { out, err, io } = captureIo();
  const code = await runCli(["pending", "list", "--config", configPath], io);
  assert.equal(code, 0, err.join("\n"));
  // The first line is the header.
  return new Map(out.slice(1).map((line) => [line.split("\t")[0]!, line.split("\t")[4]!]));
}

async function exited(proc: ServeProcess, timeoutMs = 5_000): Promise<void> {
  await waitFor(() => proc.child.exitCode !== null || proc.child.signalCode !== null, { timeoutMs, what: "the killed process to exit" });
}

test("every registration answered 200 is there after the process is killed mid-stream", async (t) => {
  // Mail goes to a port nobody listens on: it stays queued, which is not what this test is about.
  await withServiceDir({}, async ({ cfg, spawn }) => {
    const first = await spawn();
    const url = listeningUrl(first);

    const answered: { username: string; token: string }[] = [];
    const refusedWhileUp: string[] = [];
    const errorsWhileUp: string[] = [];
    let killed = false;
    const stream = async (loop: number): Promise<number> => {
      let sent = 0;
      for (let n = 0; ; n++) {
        const fields = registration({ username: `crash${loop}x${n}`, mail: `crash${loop}x${n}@example.org` });
        sent += 1;
        try {
          const res = await postRegistrationTo(url, fields);
          if (res.status === 200) answered.push({ username: fields.username, token: res.text });
          else if (!killed) refusedWhileUp.push(`${fields.username}: ${res.status} ${res.text}`);
        } catch (err) {
          // Once the process is gone every request fails; before that none may.
          if (!killed) errorsWhileUp.push(`${fields.username}: ${String(err)}`);
          return sent;
        }
        if (killed) return sent;
      }
    };
    const loops = Array.from({ length: LOOPS }, (_, loop) => stream(loop));

    await waitFor(() => answered.length >= KILL_AFTER || errorsWhileUp.length > 0, {
      timeoutMs: 30_000,
      what: `${KILL_AFTER} registrations answered 200`,
    });
    killed = true;
    first.child.kill("SIGKILL");
    const attempted = (await Promise.all(loops)).reduce((a, b) => a + b, 0);
    await exited(first);
    assert.equal(first.child.signalCode, "SIGKILL", "the process died by SIGKILL, not a clean shutdown");
    assert.deepEqual(errorsWhileUp, [], "no request failed while the process was up");
    assert.deepEqual(refusedWhileUp, [], "no registration was refused while the process was up");

    const second = await spawn();
    const after = listeningUrl(second);
    const listed = await pendingList(cfg.configPath);
    const missing = answered.filter((a) => !listed.has(a.username)).map((a) => a.username);

    let verified = 0;
    const failedTokens: string[] = [];
    for (const { username, token } of answered) {
      const res = await fetch(`${after}/register_account/verify/${encodeURIComponent(token)}`, {
        method: "POST",
        headers: { accept: "application/json" },
      });
      const body = (await res.json()) as { username?: string };
      if (res.status === 200 && body.username === username) verified += 1;
      else failedTokens.push(`${username}: ${res.status} ${JSON.stringify(body)}`);
    }

    t.diagnostic(
      `requests sent: ${attempted}, answered 200: ${answered.length}, found after restart: ${answered.length - missing.length} ` +
        `(pending list: ${listed.size}, of which stored but never answered: ${listed.size - (answered.length - missing.length)}), ` +
        `tokens verified after restart: ${verified}`,
    );
    assert.ok(answered.length >= KILL_AFTER, `at least ${KILL_AFTER} answered before the kill (${answered.length})`);
    assert.deepEqual(missing, [], "every registration answered 200 is pending after the restart");
    assert.deepEqual(failedTokens, [], "every token answered 200 completes after the restart");
    assert.equal(verified, answered.length);
    assert.ok(listed.size <= attempted, "nothing stored that was not sent");
  }, { smtp: "down" });
});

test("a mail queued but not sent when the process was killed is sent once after the restart", async (t) => {
  await withServiceDir({}, async ({ cfg, spawn, smtp }) => {
    const first = await spawn();
    const url = listeningUrl(first);

    const people = [0, 1, 2].map((i) => registration({ username: `queued${i}`, mail: `queued${i}@example.org` }));
    for (const fields of people) {
      const res = await postRegistrationTo(url, fields);
      assert.equal(res.status, 200, res.text);
    }
    // Each mail has met the closed port once and waits 2 s for its retry, so no send is in
    // flight (and no lease is held) at the moment of the kill.
    const failures = () => new Set(first.logs.filter((l) => l["msg"] === "outbox send failed, will retry").map((l) => l["outboxId"]));
    await waitFor(() => failures().size === people.length, { timeoutMs: 10_000, what: "a failed first attempt for each mail" });
    first.child.kill("SIGKILL");
    await exited(first);
    assert.equal(first.logs.filter((l) => l["msg"] === "mail sent").length, 0, "nothing was sent before the kill");

    // The SMTP server comes up on the port the config names, then the service is started again.
    const sink = await smtp.start();
    const second = await spawn();

    await sink.waitForMail(people.length, 15_000);
    await waitFor(async () => [...(await pendingList(cfg.configPath)).values()].every((s) => s === "sent"), {
      timeoutMs: 5_000,
      what: "pending list to show every mail sent",
    });
    // Well past a poll interval (1 s in a real process): nothing goes out twice.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    t.diagnostic(`queued before the kill: ${people.length}, received after the restart: ${sink.received.length}`);
    assert.deepEqual(sink.received.flatMap((m) => m.to).sort(), people.map((p) => p.mail).sort(), "each mail exactly once");
    assert.equal(second.logs.filter((l) => l["msg"] === "mail sent").length, people.length);
  }, { smtp: "down" });
});
