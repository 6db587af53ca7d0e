/**
 * Before and after, in one run: this checkout's gatehouse (A) against another checkout's (B, e.g.
 * `git archive main | tar -x -C /tmp/before` with node_modules linked), each with the bare Koa
 * baseline, in alternating rounds of one scenario at a time. For the figures of a change on a
 * machine too busy for absolute numbers.
 *
 *   node --import tsx bench/ab.ts --other /tmp/before [--only refused-blacklist,refused-auth] [--rounds 5] [--seconds 2]
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureWrk, probe, runLoad, summarize, type Measurement, type RawRun, type RequestPlan } from "./lib/load.ts";
import { cpuBetween, freePort, runGatehouseCli, snapshotCpu, startBaseline, startGatehouse, writeBenchConfig, type GatehouseServer } from "./lib/processes.ts";
import { ScenarioFactory } from "./lib/scenarios.ts";

const { values } = parseArgs({
  options: {
    other: { type: "string" },
    only: { type: "string", default: "refused-blacklist" },
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "2" },
    connections: { type: "string", default: "10" },
  },
});
if (!values.other) throw new Error("--other DIR: the checkout to compare with");
ensureWrk((m) => process.stderr.write(m + "\n"));
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const tmp = mkdtempSync(join(tmpdir(), "gatehouse-ab-"));

async function instance(name: string, root: string | undefined) {
  const dir = join(tmp, name);
  mkdirSync(dir);
  const port = await freePort();
  const configFile = join(dir, "config.json");
  writeBenchConfig(configFile, dir, port);
  const apiKey = await runGatehouseCli(["keys", "create", "bench", "--config", configFile]);
  return { configFile, port, logFile: join(dir, "gatehouse.log"), apiKey, root };
}

const a = await instance("a", undefined);
const b = await instance("b", values.other);
const factory = new ScenarioFactory({ runId: "ab", apiKey: a.apiKey });
const servers: GatehouseServer[] = [];
const baseline = await startBaseline();
try {
  const warmMix = factory.refusedMix();
  for (const inst of [a, b]) {
    const server = await startGatehouse(inst);
    servers.push(server);
    const seed = await probe(server.url, factory.throttleSeed());
    if (seed.status !== 200) throw new Error(`throttle seed answered ${seed.status}`);
    await runLoad({ url: server.url, connections, duration: 2, plan: warmMix });
  }
  const wanted = values.only!.split(",");
  const scenarios = [...factory.refused(), factory.invite()].filter((s) => wanted.includes(s.id));
  for (const scenario of scenarios) {
    const first = await probe(servers[0]!.url, scenario.plan.takeOne());
    await baseline.answerWith(scenario.status, first.bytes, first.contentType);
    const targets: { name: string; url: string; pid: number; plan: RequestPlan }[] = [
      { name: "A (this checkout)", url: servers[0]!.url, pid: servers[0]!.pid, plan: scenario.plan },
      { name: "B (--other)", url: servers[1]!.url, pid: servers[1]!.pid, plan: scenario.plan },
      { name: "bare Koa", url: baseline.url, pid: baseline.pid, plan: scenario.plan },
    ];
    for (const t of targets) await runLoad({ url: t.url, connections, duration: 1, plan: t.plan });
    const runs: RawRun[][] = targets.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (const [i, t] of targets.entries()) {
        const before = snapshotCpu({ server: t.pid });
        const run = await runLoad({ url: t.url, connections, duration: seconds, plan: t.plan });
        run.cpu = cpuBetween(before, snapshotCpu({ server: t.pid }));
        runs[i]!.push(run);
      }
    }
    const ms = runs.map((r) => summarize(r));
    const koa = ms[2]!;
    const cpuUs = (m: Measurement) => ((m.cpu?.processes["server"] ?? 0) * 1e6) / (m.reqPerSec || 1);
    console.log(`\n${scenario.label} (${scenario.status}), ${rounds} × ${seconds} s alternating, ${connections} connections`);
    for (const [i, t] of targets.entries()) {
      const m = ms[i]!;
      const share = (m.statusCounts[String(scenario.status)] ?? 0) / Math.max(1, m.requests);
      console.log(
        `  ${t.name.padEnd(18)} ${m.reqPerSec.toFixed(0).padStart(7)} req/s  ${(m.reqPerSec / koa.reqPerSec).toFixed(2)}× koa  ` +
          `p50 ${m.p50Ms.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms (${(m.p99Ms / koa.p99Ms).toFixed(1)}× koa)  ` +
          `CPU ${cpuUs(m).toFixed(0)} µs/req  other ${(m.cpu?.other ?? 0).toFixed(2)} cores${share < 0.99 ? `  STATUS ${JSON.stringify(m.statusCounts)}` : ""}`,
      );
    }
    console.log(`  A/B: ${(ms[0]!.reqPerSec / ms[1]!.reqPerSec).toFixed(2)}× req/s, CPU per request ${(cpuUs(ms[0]!) / cpuUs(ms[1]!)).toFixed(2)}×`);
  }
} finally {
  for (const s of servers) await s.stop();
  await baseline.stop();
  rmSync(tmp, { recursive: true, force: true });
}
