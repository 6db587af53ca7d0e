/**
 * `npm run bench`: gatehouse against a bare Koa baseline and against the machine's hash rate, in
 * one run on one machine. See bench/README.md for the scenarios and targets.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, platform, release, tmpdir, totalmem } from "node:os";
import { basename, join } from "node:path";
import { ensureWrk, expectedShare, probe, runLoad, startLoad, summarize, type Measurement, type RawRun, type RequestPlan } from "./lib/load.ts";
import { readOptions, USAGE, type BenchOptions } from "./lib/options.ts";
import { formatProfile, summarizeProfile, type ProfileSummary, type ProfileWindow } from "./lib/profile.ts";
import {
  cpuBetween,
  freePort,
  measureHashBound,
  readRss,
  ROOT,
  runGatehouseCli,
  snapshotCpu,
  startBaseline,
  startGatehouse,
  threadPoolSize,
  writeBenchConfig,
  type BaselineServer,
  type GatehouseServer,
} from "./lib/processes.ts";
import { fmtMb, fmtRate, formatTable, type Row } from "./lib/report.ts";
import { ScenarioFactory, type Scenario } from "./lib/scenarios.ts";
import { seedPopulation, seedVerifyTokens, type SeedReport } from "./lib/seed.ts";

// The targets of the issue, as ratios measured in one run.
const REFUSED_VS_KOA = 0.8;
/** The verify page GET and the invites_api 201. */
const SERVED_VS_KOA = 0.7;
/** Rows with a target against bare Koa also keep their p99 within this many times bare Koa's. */
const P99_VS_KOA = 3;
const ACCEPTED_VS_HASH_BOUND = 0.85;
const FLOOD_P99_MS = 25;
const SEEDED_VS_EMPTY = 0.9;
const MEMORY_GROWTH_BYTES = 30 * 1024 * 1024;
/** Below this share of answers with the scenario's status, a figure does not measure the scenario. */
const MIN_EXPECTED_SHARE = 0.99;
/** The config's pendingTtlSeconds (the default), for the rows the benchmark writes itself. */
const PENDING_TTL_SECONDS = 86_400;
/** More completions a second than gatehouse manages here, to size the pool of fresh tokens. */
const VERIFY_COMPLETIONS_CEILING = 4_000;
const CONFIRM_TOKENS = 1_000;
/** CPU used by other processes during a measurement, in cores, above which the row says so. */
const OTHER_CPU_NOTE = 0.15;

const RESULTS_DIR = join(ROOT, "bench", "results");

const wallStarted = performance.now();
function progress(message: string): void {
  const seconds = ((performance.now() - wallStarted) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${seconds}s] ${message}\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const count = (n: number) => n.toLocaleString("en-US");

/** A run's gatehouse process; under --profile, restarted for every scenario so each gets its own profile. */
class GatehouseSession {
  #server: GatehouseServer | null = null;
  #profileFile: string | null = null;

  constructor(
    private readonly setup: {
      configFile: string;
      port: number;
      logFile: string;
      factory: ScenarioFactory;
      profile: { dir: string; prefix: string } | null;
      /** Every profile written, with the part of its process's life that measurements covered. */
      profiles: Map<string, ProfileWindow | null>;
      /** Load that brings a freshly started server's JIT up to speed before anything is measured. */
      startupWarmup: { plan: RequestPlan; seconds: number; connections: number };
      /** `serve --workers N`. */
      workers?: number;
    },
  ) {}

  async serverFor(name: string): Promise<GatehouseServer> {
    if (this.#server && !this.setup.profile) return this.#server;
    await this.stop();
    const profile = this.setup.profile ? { dir: this.setup.profile.dir, name: `${this.setup.profile.prefix}-${name}` } : undefined;
    this.#server = await startGatehouse({ configFile: this.setup.configFile, port: this.setup.port, logFile: this.setup.logFile, profile, workers: this.setup.workers });
    this.#profileFile = profile ? join(profile.dir, `${profile.name}.cpuprofile`) : null;
    if (this.#profileFile) this.setup.profiles.set(this.#profileFile, null);
    // The throttled scenario needs its IP to have registered once in this process's limiter.
    const seed = await probe(this.#server.url, this.setup.factory.throttleSeed());
    if (seed.status !== 200) throw new Error(`the registration that starts the throttle window got ${seed.status}, not 200`);
    const { plan, seconds, connections } = this.setup.startupWarmup;
    await runLoad({ url: this.#server.url, connections, duration: seconds, plan });
    return this.#server;
  }

  /** gatehouse under a plan, as a target whose measured rounds mark the window of the current profile. */
  target(server: GatehouseServer, plan: RequestPlan, connections: number, watched: Record<string, number>): Target {
    return httpTarget(server.url, plan, connections, watched, (start, end) => this.markMeasured(server, start, end));
  }

  /** Widens the current profile's window to cover a measured stretch (performance.now() times). */
  markMeasured(server: GatehouseServer, start: number, end: number): void {
    const file = this.#profileFile;
    if (file === null) return;
    const known = this.setup.profiles.get(file);
    const fromMs = start - server.spawnedAt;
    const toMs = end - server.spawnedAt;
    this.setup.profiles.set(file, known ? { fromMs: Math.min(known.fromMs, fromMs), toMs: Math.max(known.toMs, toMs) } : { fromMs, toMs });
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    await server?.stop();
  }
}

/** Something measured in rounds: an HTTP server under a plan, or the hash-bound child. */
interface Target {
  warm(seconds: number): Promise<void>;
  round(seconds: number): Promise<RawRun>;
}

function httpTarget(
  url: string,
  plan: RequestPlan,
  connections: number,
  watched: Record<string, number>,
  onMeasured?: (start: number, end: number) => void,
): Target {
  return {
    async warm(seconds) {
      await runLoad({ url, connections, duration: seconds, plan });
    },
    async round(seconds) {
      const before = snapshotCpu(watched);
      const started = performance.now();
      const run = await runLoad({ url, connections, duration: seconds, plan });
      onMeasured?.(started, performance.now());
      run.cpu = cpuBetween(before, snapshotCpu(watched));
      return run;
    },
  };
}

/** Hashes stand for requests; each round is a fresh child, warmed for half a second before its window. */
function hashTarget(connections: number): Target {
  return {
    async warm() {},
    async round(seconds) {
      const bound = await measureHashBound(connections, seconds, 0.5);
      return { requests: bound.hashes, seconds: bound.seconds, statusCounts: {}, errors: 0, timeouts: 0, latencyUs: new Map() };
    },
  };
}

/**
 * Warms every target, then measures them in alternating rounds that add up to the scenario's
 * duration each: what is compared shares the same moments of a shared, drifting machine.
 */
async function measureInterleaved(targets: readonly Target[], options: BenchOptions): Promise<Measurement[]> {
  if (options.warmup > 0) for (const target of targets) await target.warm(options.warmup);
  const roundSeconds = Math.max(1, Math.round(options.duration / options.rounds));
  const runs: RawRun[][] = targets.map(() => []);
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < targets.length; i++) runs[i]!.push(await targets[i]!.round(roundSeconds));
  }
  return runs.map((r) => summarize(r));
}

interface RunState {
  options: BenchOptions;
  factory: ScenarioFactory;
  baseline: BaselineServer;
  rows: Row[];
  hashBound: Measurement | null;
}

/** Phases the smoke run leaves out unless --only names them: each starts servers of its own, and CI's smoke run must stay under a minute. */
const NOT_IN_SMOKE = new Set(["cold", "workers"]);

function selected(options: BenchOptions, phase: string, scenario?: Scenario): boolean {
  if (options.only.length === 0) return !(options.smoke && NOT_IN_SMOKE.has(phase));
  const names = [phase];
  if (scenario) names.push(scenario.id, scenario.group, `${phase}/${scenario.id}`);
  return names.some((n) => options.only.includes(n));
}

function statusNote(m: Measurement): string {
  const counts = Object.entries(m.statusCounts).map(([s, n]) => `${s}×${count(n)}`).join(" ");
  return `statuses: ${counts}${m.errors ? `, errors ${count(m.errors)}` : ""}`;
}

/** The machine is shared (other people's tests, a busy host): say so next to the figure it may skew. */
function contentionNotes(m: Measurement | null | undefined, what: string): string[] {
  if (!m?.cpu) return [];
  const notes: string[] = [];
  if (m.cpu.other > OTHER_CPU_NOTE) notes.push(`other processes used ${m.cpu.other.toFixed(2)} cores during the ${what} rounds`);
  if (m.cpu.steal > OTHER_CPU_NOTE) notes.push(`hypervisor steal ${m.cpu.steal.toFixed(2)} cores during the ${what} rounds`);
  return notes;
}

/**
 * Server CPU per answered request, gatehouse's against the baseline's: less moved by a busy machine
 * than the rates are, so it says what gatehouse's own work costs even when the ratio is noisy.
 */
function cpuPerRequest(gatehouse: Measurement, koa: Measurement): string {
  const us = (m: Measurement, name: string) => ((m.cpu?.processes[name] ?? 0) * 1e6) / (m.reqPerSec || 1);
  const g = us(gatehouse, "gatehouse");
  const k = us(koa, "baseline");
  return `server CPU per request: gatehouse ${g.toFixed(0)} µs, bare Koa ${k.toFixed(0)} µs (${k > 0 ? (g / k).toFixed(2) : "—"}×)`;
}

function makeRow(key: string, label: string, status: number | null, m: Measurement | null, allowed: readonly number[]): Row {
  const share = m === null ? 1 : allowed.reduce((sum, s) => sum + expectedShare(m, s), 0);
  const statusOk = share >= MIN_EXPECTED_SHARE;
  return {
    key,
    label,
    status,
    measurement: m,
    baselineText: "—",
    baselineValue: null,
    ratio: null,
    ratioText: "—",
    target: "",
    pass: null,
    statusOk,
    koa: null,
    notes: statusOk || m === null ? [] : [statusNote(m)],
  };
}

function compare(row: Row, reference: { text: string; value: number } | null, target: { text: string; min: number } | null): Row {
  row.target = target?.text ?? "";
  if (!reference || !row.measurement) return row;
  row.baselineText = `${reference.text} ${fmtRate(reference.value)}`;
  row.baselineValue = reference.value;
  row.ratio = reference.value > 0 ? row.measurement.reqPerSec / reference.value : null;
  // Rounded down, so a ratio shown as the target's value has met it (0.899 shows as 0.89, not 0.90).
  row.ratioText = row.ratio === null ? "—" : `${(Math.floor(row.ratio * 100) / 100).toFixed(2)}×`;
  if (target) row.pass = row.ratio !== null && row.ratio >= target.min;
  return row;
}

/** req/s against bare Koa's, and, with a target, p99 within P99_VS_KOA × bare Koa's too. */
function againstKoa(row: Row, koa: Measurement, min: number | null): Row {
  if (min === null) return compare(row, { text: "koa", value: koa.reqPerSec }, null);
  compare(row, { text: "koa", value: koa.reqPerSec }, { text: `≥${min.toFixed(2)}× koa, p99 ≤${P99_VS_KOA}×`, min });
  const m = row.measurement;
  if (m && koa.p99Ms > 0) {
    const p99Ratio = m.p99Ms / koa.p99Ms;
    row.notes.push(`p99 ${p99Ratio.toFixed(1)}× bare Koa's (${koa.p99Ms.toFixed(2)} ms)`);
    if (p99Ratio > P99_VS_KOA) row.pass = false;
  }
  return row;
}

function logRow(row: Row): void {
  const m = row.measurement;
  const figures = m ? `${fmtRate(m.reqPerSec)} req/s, p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms.toFixed(2)} ms` : "";
  const against = row.baselineValue !== null ? ` (${row.baselineText}, ${row.ratioText})` : "";
  progress(`${row.key}: ${figures}${against}${row.notes.length ? ` — ${row.notes.join("; ")}` : ""}`);
}

/**
 * A scenario on gatehouse and on the bare Koa baseline answering the same status and body size
 * (learned from one request sent first); for accepted registrations, also the hash-bound child.
 */
async function measureAgainstKoa(state: RunState, session: GatehouseSession, server: GatehouseServer, scenario: Scenario, withHashBound: boolean) {
  const { options, baseline } = state;
  const notes: string[] = [];
  const first = await probe(server.url, scenario.plan.takeOne());
  if (first.status !== scenario.status) notes.push(`first answer was ${first.status}, expected ${scenario.status}`);
  await baseline.answerWith(scenario.status, first.bytes, first.contentType);
  const watched = { client: process.pid, gatehouse: server.pid, baseline: baseline.pid };
  const targets = [
    session.target(server, scenario.plan, options.connections, watched),
    httpTarget(baseline.url, scenario.baselinePlan ?? scenario.plan, options.connections, watched),
  ];
  if (withHashBound) targets.push(hashTarget(options.connections));
  const [gatehouse, koa, hashes] = await measureInterleaved(targets, options);
  return { gatehouse: gatehouse!, koa: koa!, hashes: hashes ?? null, notes };
}

async function runEmptyStore(state: RunState, session: GatehouseSession, scenarios: Scenario[]): Promise<void> {
  const { options } = state;
  for (const scenario of scenarios) {
    if (!selected(options, "empty", scenario)) continue;
    const server = await session.serverFor(scenario.id);
    const accepted = scenario.group === "accepted";
    const { gatehouse, koa, hashes, notes } = await measureAgainstKoa(state, session, server, scenario, accepted);
    const row = makeRow(`empty/${scenario.id}`, scenario.label, scenario.status, gatehouse, [scenario.status]);
    row.koa = koa;
    row.notes.push(...notes, cpuPerRequest(gatehouse, koa), ...contentionNotes(gatehouse, "gatehouse"), ...contentionNotes(koa, "baseline"));
    if (scenario.group === "refused") {
      againstKoa(row, koa, REFUSED_VS_KOA);
    } else if (accepted && hashes) {
      state.hashBound = hashes;
      compare(row, { text: "argon2", value: hashes.reqPerSec }, { text: `≥${ACCEPTED_VS_HASH_BOUND.toFixed(2)}× argon2`, min: ACCEPTED_VS_HASH_BOUND });
      row.notes.push(`bare Koa ${fmtRate(koa.reqPerSec)} req/s`);
    } else {
      againstKoa(row, koa, scenario.id === "invite" ? SERVED_VS_KOA : null);
    }
    state.rows.push(row);
    logRow(row);
  }
}

/** What a restart looks like to the first requests: the first seconds after /healthz first answers. */
const COLD_SECONDS = 2;
const COLD_STARTS = 3;

/**
 * Cold start: a freshly started gatehouse and a freshly started bare Koa, each loaded with the
 * blacklisted refusal from the moment it answers (gatehouse's /healthz, the baseline's settings
 * request), alternating, a few starts each. No warm-up, by design: restarts and deploys are when a
 * flood hurts most.
 */
async function runColdStart(state: RunState, instance: { configFile: string; port: number; logFile: string }, scenario: Scenario): Promise<void> {
  const { options } = state;
  if (!selected(options, "cold", scenario)) return;
  const starts = Math.min(options.rounds, COLD_STARTS);
  // The smoke run only checks that the phase still works.
  const coldSeconds = options.smoke ? 1 : COLD_SECONDS;
  const gatehouseRuns: RawRun[] = [];
  const koaRuns: RawRun[] = [];
  let bytes = 0;
  let contentType = "text/plain";
  for (let i = 0; i < starts; i++) {
    const server = await startGatehouse(instance);
    try {
      const watched = { client: process.pid, gatehouse: server.pid };
      const before = snapshotCpu(watched);
      const run = await runLoad({ url: server.url, connections: options.connections, duration: coldSeconds, plan: scenario.plan });
      run.cpu = cpuBetween(before, snapshotCpu(watched));
      gatehouseRuns.push(run);
      const first = await probe(server.url, scenario.plan.takeOne());
      bytes = first.bytes;
      contentType = first.contentType;
    } finally {
      await server.stop();
    }
    const koa = await startBaseline();
    try {
      await koa.answerWith(scenario.status, bytes, contentType);
      const watched = { client: process.pid, baseline: koa.pid };
      const before = snapshotCpu(watched);
      const run = await runLoad({ url: koa.url, connections: options.connections, duration: coldSeconds, plan: scenario.plan });
      run.cpu = cpuBetween(before, snapshotCpu(watched));
      koaRuns.push(run);
    } finally {
      await koa.stop();
    }
  }
  const gatehouse = summarize(gatehouseRuns);
  const koa = summarize(koaRuns);
  const row = makeRow(`cold/${scenario.id}`, `first ${coldSeconds} s after start · ${scenario.label}`, scenario.status, gatehouse, [scenario.status]);
  row.koa = koa;
  row.baselineText = `koa p99 ${koa.p99Ms.toFixed(2)} ms`;
  row.baselineValue = koa.p99Ms;
  row.ratioText = koa.p99Ms > 0 ? `p99 ${(gatehouse.p99Ms / koa.p99Ms).toFixed(1)}×` : "—";
  row.notes.push(
    `${starts} fresh starts each, alternating; bare Koa ${fmtRate(koa.reqPerSec)} req/s, p50 ${koa.p50Ms.toFixed(2)} ms`,
    ...contentionNotes(gatehouse, "gatehouse"),
    ...contentionNotes(koa, "baseline"),
  );
  state.rows.push(row);
  logRow(row);
}

async function runFlood(state: RunState, session: GatehouseSession, refused: Scenario[], accepted: Scenario): Promise<void> {
  const { options } = state;
  const chosen = refused.filter((s) => selected(options, "flood", s));
  if (chosen.length === 0) return;
  const server = await session.serverFor("flood");
  const flood = startLoad({ url: server.url, connections: options.connections, duration: 1_000_000, plan: accepted.plan });
  await sleep(Math.max(1, options.warmup) * 1000);
  for (const scenario of chosen) {
    const [m] = await measureInterleaved([session.target(server, scenario.plan, options.connections, { client: process.pid, gatehouse: server.pid })], options);
    const row = makeRow(`flood/${scenario.id}`, `under flood · ${scenario.label}`, scenario.status, m!, [scenario.status]);
    row.notes.push(...contentionNotes(m, "gatehouse"));
    const empty = state.rows.find((r) => r.key === `empty/${scenario.id}`);
    if (empty?.koa) compare(row, { text: "koa", value: empty.koa.reqPerSec }, null);
    row.target = `p99 < ${FLOOD_P99_MS} ms`;
    row.pass = m!.p99Ms < FLOOD_P99_MS;
    state.rows.push(row);
    logRow(row);
  }
  flood.stop();
  const floodResult = summarize([await flood.done]);
  const row = makeRow("flood/accepted", "the accepted flood itself (other connections)", 200, floodResult, [200]);
  if (state.hashBound) compare(row, { text: "argon2", value: state.hashBound.reqPerSec }, null);
  state.rows.push(row);
  logRow(row);
}

async function runMemory(state: RunState, session: GatehouseSession, mix: RequestPlan): Promise<void> {
  const { options } = state;
  if (!selected(options, "memory")) return;
  // A process of its own, so nothing the other scenarios left behind (limiter entries that expire
  // during the run, heap they freed) blurs what a million refusals add.
  await session.stop();
  const server = await session.serverFor("memory");
  const load = { url: server.url, connections: options.connections, plan: mix };
  progress(`memory: warm-up of ${count(options.memoryWarmupRequests)} refused requests`);
  await runLoad({ ...load, amount: options.memoryWarmupRequests });
  await sleep(1000);
  const warm = readRss(server.pid);
  progress(`memory: RSS after warm-up ${fmtMb(warm)}; driving ${count(options.memoryRequests)} refused requests`);
  const watched = { client: process.pid, gatehouse: server.pid };
  const before = snapshotCpu(watched);
  const started = performance.now();
  const run = await runLoad({ ...load, amount: options.memoryRequests });
  session.markMeasured(server, started, performance.now());
  run.cpu = cpuBetween(before, snapshotCpu(watched));
  await sleep(1000);
  const after = readRss(server.pid);
  const m = summarize([run]);
  // 429: a bad-token peer of the memory pool answered past ten a minute, a refusal before the hash too.
  const row = makeRow("memory/refused-mix", `memory: RSS after ${count(options.memoryRequests)} refused`, null, m, [401, 403, 503, 400, 429]);
  row.baselineText = `warm ${fmtMb(warm)}`;
  row.baselineValue = warm;
  row.ratioText = `${after >= warm ? "+" : "−"}${fmtMb(Math.abs(after - warm))}`;
  row.target = `≤ +${fmtMb(MEMORY_GROWTH_BYTES)}`;
  row.pass = after - warm <= MEMORY_GROWTH_BYTES;
  row.notes.push(`RSS after warm-up ${count(warm)} B, after ${count(after)} B`, ...contentionNotes(m, "gatehouse"));
  state.rows.push(row);
  logRow(row);
}

async function runVerify(state: RunState, session: GatehouseSession, dbFile: string): Promise<void> {
  const { options, factory } = state;
  if (![factory.verifyConfirm([]), factory.verifyComplete([])].some((s) => selected(options, "verify", s))) return;
  // The rows go in with the server stopped, as a bulk load would; gatehouse then finds them as its own.
  await session.stop();
  const poolSize = Math.ceil((options.warmup + options.duration + 1) * VERIFY_COMPLETIONS_CEILING);
  progress(`verify: storing ${count(CONFIRM_TOKENS)} + ${count(poolSize)} pending registrations with known tokens`);
  const confirmTokens = await seedVerifyTokens(dbFile, CONFIRM_TOKENS, "c", PENDING_TTL_SECONDS);
  const completeTokens = await seedVerifyTokens(dbFile, poolSize, "p", PENDING_TTL_SECONDS);
  for (const scenario of [factory.verifyConfirm(confirmTokens), factory.verifyComplete(completeTokens)]) {
    if (!selected(options, "verify", scenario)) continue;
    const server = await session.serverFor(scenario.id);
    const { gatehouse, koa, notes } = await measureAgainstKoa(state, session, server, scenario, false);
    const row = makeRow(`verify/${scenario.id}`, scenario.label, scenario.status, gatehouse, [scenario.status]);
    row.koa = koa;
    row.notes.push(...notes, cpuPerRequest(gatehouse, koa), ...contentionNotes(gatehouse, "gatehouse"), ...contentionNotes(koa, "baseline"));
    againstKoa(row, koa, scenario.id === "verify-confirm" ? SERVED_VS_KOA : null);
    state.rows.push(row);
    logRow(row);
  }
}

function compactCount(n: number): string {
  if (n >= 1_000_000 && n % 100_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1_000 && n % 100 === 0) return `${n / 1_000}k`;
  return String(n);
}

/**
 * The refused and accepted scenarios on the seeded store, each in rounds alternating with the same
 * scenario on a fresh empty store, served by a second gatehouse process with the same config.
 */
async function runSeeded(
  state: RunState,
  sessions: { empty: GatehouseSession; seeded: GatehouseSession },
  scenarios: Scenario[],
  seed: () => Promise<SeedReport>,
): Promise<SeedReport | null> {
  const { options } = state;
  const chosen = scenarios.filter((s) => selected(options, "seeded", s));
  if (chosen.length === 0) return null;
  progress(`seeded: storing ${count(options.seedAccounts)} accounts and ${count(options.seedPending)} pending registrations`);
  const report = await seed();
  progress(`seeded: done in ${report.seconds.toFixed(1)} s (database ${fmtMb(report.databaseBytes)}), outside every figure`);
  const store = `${compactCount(options.seedAccounts)}+${compactCount(options.seedPending)} store`;
  for (const scenario of chosen) {
    const [emptyServer, seededServer] = await Promise.all([sessions.empty.serverFor(scenario.id), sessions.seeded.serverFor(scenario.id)]);
    const first = await probe(seededServer.url, scenario.plan.takeOne());
    const watched = (server: GatehouseServer, other: GatehouseServer) => ({ client: process.pid, gatehouse: server.pid, "other gatehouse": other.pid });
    const [empty, seeded] = await measureInterleaved(
      [
        sessions.empty.target(emptyServer, scenario.plan, options.connections, watched(emptyServer, seededServer)),
        sessions.seeded.target(seededServer, scenario.plan, options.connections, watched(seededServer, emptyServer)),
      ],
      options,
    );
    const row = makeRow(`seeded/${scenario.id}`, `${store} · ${scenario.label}`, scenario.status, seeded!, [scenario.status]);
    if (first.status !== scenario.status) row.notes.push(`first answer was ${first.status}, expected ${scenario.status}`);
    if (expectedShare(empty!, scenario.status) < MIN_EXPECTED_SHARE) {
      row.statusOk = false;
      row.notes.push(`empty store: ${statusNote(empty!)}`);
    }
    row.notes.push(...contentionNotes(seeded, "seeded"), ...contentionNotes(empty, "empty-store"));
    compare(row, { text: "empty", value: empty!.reqPerSec }, { text: `≥${SEEDED_VS_EMPTY.toFixed(2)}× empty`, min: SEEDED_VS_EMPTY });
    row.koa = state.rows.find((r) => r.key === `empty/${scenario.id}`)?.koa ?? null;
    row.notes.push(`empty store alongside: p50 ${empty!.p50Ms.toFixed(2)} ms, p99 ${empty!.p99Ms.toFixed(2)} ms`);
    state.rows.push(row);
    logRow(row);
  }
  return report;
}

/** Refused throughput with `serve --workers 2` against one process, alternating. */
const WORKERS_VS_ONE = 1.5;

async function runWorkers(state: RunState, sessions: { one: GatehouseSession; two: GatehouseSession }, scenarios: Scenario[]): Promise<void> {
  const { options } = state;
  for (const scenario of scenarios) {
    if (!selected(options, "workers", scenario)) continue;
    const [one, two] = await Promise.all([sessions.one.serverFor(scenario.id), sessions.two.serverFor(scenario.id)]);
    const first = await probe(two.url, scenario.plan.takeOne());
    const [single, double] = await measureInterleaved(
      [
        sessions.one.target(one, scenario.plan, options.connections, { client: process.pid, gatehouse: one.pid }),
        sessions.two.target(two, scenario.plan, options.connections, { client: process.pid, gatehouse: two.pid }),
      ],
      options,
    );
    const row = makeRow(`workers/${scenario.id}`, `serve --workers 2 · ${scenario.label}`, scenario.status, double!, [scenario.status]);
    if (first.status !== scenario.status) row.notes.push(`first answer was ${first.status}, expected ${scenario.status}`);
    if (expectedShare(single!, scenario.status) < MIN_EXPECTED_SHARE) {
      row.statusOk = false;
      row.notes.push(`one worker: ${statusNote(single!)}`);
    }
    compare(row, { text: "1 proc", value: single!.reqPerSec }, { text: `≥${WORKERS_VS_ONE.toFixed(2)}× 1 proc`, min: WORKERS_VS_ONE });
    row.notes.push(
      `one process alongside: ${fmtRate(single!.reqPerSec)} req/s, p99 ${single!.p99Ms.toFixed(2)} ms`,
      ...contentionNotes(double, "two-worker"),
      ...contentionNotes(single, "one-process"),
    );
    state.rows.push(row);
    logRow(row);
  }
}

/** A fresh data directory with its config, migrated by the CLI, and an API key made beforehand. */
async function prepareInstance(root: string, name: string) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const configFile = join(dir, "config.json");
  writeBenchConfig(configFile, dir, port);
  const apiKey = await runGatehouseCli(["keys", "create", "bench", "--config", configFile]);
  return { configFile, port, dbFile: join(dir, "gh.db"), logFile: join(dir, "gatehouse.log"), apiKey };
}

function stampNow(): string {
  // ISO 8601 basic format: sorts, and has no character a file system dislikes.
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = readOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  ensureWrk(progress);
  const stamp = stampNow();
  const runId = randomBytes(3).toString("hex");
  const tmp = mkdtempSync(join(tmpdir(), "gatehouse-bench-"));
  mkdirSync(RESULTS_DIR, { recursive: true });
  const profiles = new Map<string, ProfileWindow | null>();
  const profileDir = join(tmp, "profiles");
  const profileFor = (prefix: string) => (options.profile ? { dir: profileDir, prefix: `${stamp}-${prefix}` } : null);
  const cpuList = cpus();
  const machine = {
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model ?? "unknown",
    node: process.version,
    platform: `${platform()} ${release()}`,
    totalMemoryBytes: totalmem(),
    loadAverageAtStart: loadavg(),
    uvThreadPoolSize: threadPoolSize(),
  };
  const roundSeconds = Math.max(1, Math.round(options.duration / options.rounds));
  progress(
    `gatehouse bench${options.smoke ? " (smoke)" : ""}: ${options.rounds * roundSeconds} s per scenario (${options.rounds} × ${roundSeconds} s, ` +
      `alternating with its baseline) after ${options.warmup} s warm-up, ${options.connections} connections, ` +
      `${machine.cpus} CPUs, node ${machine.node}; work dir ${tmp}`,
  );
  if (machine.cpus <= 2) progress("note: the load generator, the servers and the baseline share this machine's cores");

  const empty = await prepareInstance(tmp, "empty");
  const factory = new ScenarioFactory({ runId, apiKey: empty.apiKey });
  const baseline = await startBaseline();
  const state: RunState = { options, factory, baseline, rows: [], hashBound: null };
  const startupWarmup = { plan: factory.refusedMix(), seconds: Math.max(1, options.warmup), connections: options.connections };
  const sessions: GatehouseSession[] = [];
  const session = (instance: typeof empty, prefix: string) => {
    const created = new GatehouseSession({ ...instance, factory, profile: profileFor(prefix), profiles, startupWarmup });
    sessions.push(created);
    return created;
  };
  let seeding: SeedReport | null = null;
  try {
    const refused = factory.refused();
    const accepted = factory.accepted();

    await runColdStart(state, empty, refused.find((s) => s.id === "refused-blacklist")!);
    const primary = session(empty, "empty");
    await runEmptyStore(state, primary, [...refused, accepted, factory.invite()]);
    await runFlood(state, primary, refused, accepted);
    await runMemory(state, primary, factory.refusedMix());
    await runVerify(state, primary, empty.dbFile);
    await primary.stop();

    const workerScenarios = refused.filter((s) => s.id === "refused-blacklist" || s.id === "refused-auth");
    if (workerScenarios.some((s) => selected(options, "workers", s))) {
      const [single, double] = await Promise.all([prepareInstance(tmp, "one-process"), prepareInstance(tmp, "two-workers")]);
      const two = new GatehouseSession({ ...double, factory, profile: null, profiles, startupWarmup, workers: 2 });
      sessions.push(two);
      await runWorkers(state, { one: session(single, "one-process"), two }, workerScenarios);
    }

    if ([...refused, accepted].some((s) => selected(options, "seeded", s))) {
      const [fresh, seeded] = await Promise.all([prepareInstance(tmp, "fresh"), prepareInstance(tmp, "seeded")]);
      seeding = await runSeeded(state, { empty: session(fresh, "fresh"), seeded: session(seeded, "seeded") }, [...refused, accepted], () =>
        seedPopulation(seeded.dbFile, { accounts: options.seedAccounts, pending: options.seedPending }, PENDING_TTL_SECONDS),
      );
    }
  } catch (err) {
    progress(`failed; the work dir ${tmp} is kept (configs, databases, server logs)`);
    throw err;
  } finally {
    for (const s of sessions) await s.stop();
    await baseline.stop();
  }

  const summaries: { name: string; summary: ProfileSummary }[] = [];
  for (const [file, window] of profiles) {
    if (!existsSync(file)) {
      progress(`profile ${file} was not written`);
      continue;
    }
    const target = join(RESULTS_DIR, basename(file));
    renameSync(file, target);
    summaries.push({ name: basename(target, ".cpuprofile"), summary: summarizeProfile(target, window) });
  }

  const wallSeconds = (performance.now() - wallStarted) / 1000;
  const rows = state.rows;
  const failed = rows.filter((r) => r.pass === false);
  const broken = rows.filter((r) => !r.statusOk);
  const resultFile = join(RESULTS_DIR, `${stamp}.json`);
  writeFileSync(
    resultFile,
    JSON.stringify(
      {
        startedAt: new Date(Date.now() - wallSeconds * 1000).toISOString(),
        mode: options.smoke ? "smoke" : "full",
        options,
        machine: { ...machine, loadAverageAtEnd: loadavg() },
        targets: {
          refusedVsKoa: REFUSED_VS_KOA,
          servedVsKoa: SERVED_VS_KOA,
          p99VsKoa: P99_VS_KOA,
          acceptedVsHashBound: ACCEPTED_VS_HASH_BOUND,
          floodP99Ms: FLOOD_P99_MS,
          seededVsEmpty: SEEDED_VS_EMPTY,
          workersVsOne: WORKERS_VS_ONE,
          memoryGrowthBytes: MEMORY_GROWTH_BYTES,
        },
        hashBound: state.hashBound
          ? { hashesPerSecond: state.hashBound.reqPerSec, hashes: state.hashBound.requests, seconds: state.hashBound.seconds, via: "src/domain/passwords.ts hashPassword" }
          : null,
        seeding,
        // Latencies in rows are milliseconds; rates per second; cpu in cores' worth.
        rows,
        profiles: summaries,
        failedTargets: failed.map((r) => r.key),
        badStatus: broken.map((r) => r.key),
        wallSeconds,
      },
      null,
      2,
    ) + "\n",
  );

  const out: string[] = [""];
  if (options.smoke) {
    out.push(
      `SMOKE RUN: ${options.duration} s per scenario; memory run of ${count(options.memoryRequests)} requests (the target is for 1,000,000); ` +
        `seeded store of ${count(options.seedAccounts)} accounts + ${count(options.seedPending)} pending (the target is for 1,000,000 + 100,000). ` +
        "Targets are reported, not enforced.",
    );
  }
  if (options.profile) {
    out.push("PROFILED RUN: the servers ran under node --cpu-prof, which slows them; each profile below covers its measured rounds only (main thread).");
  }
  if (state.hashBound) {
    out.push(
      `hash-bound limit: ${state.hashBound.reqPerSec.toFixed(1)} Argon2id hashes/s through gatehouse's hashPassword (ARGON2_OPTIONS, its own thread pool), ` +
        `${options.connections} in flight, no HTTP; rounds alternating with the accepted scenario`,
    );
  }
  if (seeding) out.push(`seeding: ${count(seeding.accounts)} accounts + ${count(seeding.pending)} pending in ${seeding.seconds.toFixed(1)} s (outside the timed part)`);
  out.push("", formatTable(rows), "");
  for (const row of rows.filter((r) => r.notes.length > 0)) out.push(`  ${row.key}: ${row.notes.join("; ")}`);
  for (const { name, summary } of summaries) out.push("", formatProfile(summary, name));
  out.push("");
  if (broken.length > 0) out.push(`answers with other statuses than the scenario's (the bench no longer matches gatehouse): ${broken.map((r) => r.key).join(", ")}`);
  out.push(failed.length > 0 ? `targets failed: ${failed.map((r) => r.key).join(", ")}` : "all targets met");
  out.push(`results: ${resultFile}`);
  out.push(`wall time: ${wallSeconds.toFixed(0)} s`);
  process.stdout.write(out.join("\n") + "\n");

  if (!options.keep) rmSync(tmp, { recursive: true, force: true });
  else progress(`kept ${tmp}`);
  if (broken.length > 0) return 1;
  return !options.smoke && failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
