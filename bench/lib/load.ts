import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CpuShares } from "./processes.ts";

/**
 * The load generator is wrk (C, one thread, epoll): it costs the machine's cores a fraction of
 * what a load generator in Node does, so on a small machine the servers get the CPU the figures
 * are about. Every run is one wrk process driven by a Lua script written for its plan.
 */
export const WRK = process.env["BENCH_WRK"] ?? "wrk";

export interface RequestSpec {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * One kind of request in a plan. Each kind's requests are numbered 0, 1, 2… over the whole life of
 * the plan (across runs), so a scenario that must never repeat a request does not.
 */
export type Slot =
  /** The same request every time. */
  | { kind: "fixed"; spec: RequestSpec }
  /** The list in turn, over and over. */
  | { kind: "cycle"; specs: readonly RequestSpec[] }
  /** Each request of the list once; after the last, `fallback` (which should answer otherwise, so it shows). */
  | { kind: "once"; specs: readonly RequestSpec[]; fallback: RequestSpec }
  /** A fixed request sent from peer number k of a pool, through `X-Forwarded-For` (NET.a.b.c). */
  | { kind: "peers"; spec: RequestSpec; pool: number; net: string }
  /** Registration k: user `${prefix}n${k}`, end-user IP 100.64.0.0/10 number k, as mod_register_json sends it. */
  | { kind: "registrations"; path: string; prefix: string; authToken: string };

/**
 * What the connections send: the slots in turn, each with its own count. The plan remembers how far
 * it got, so the next run (a round after a warm-up) goes on where the last one ended.
 */
export class RequestPlan {
  #next = 0;
  constructor(readonly slots: readonly Slot[]) {
    if (slots.length === 0) throw new Error("empty request plan");
  }

  get next(): number {
    return this.#next;
  }

  /** Skips what a run sent: what it completed, and what may have been in flight when it ended. */
  advance(sent: number): void {
    this.#next += sent;
  }

  /** The request the next run starts with, for a probe outside the measurement (it uses that number up). */
  takeOne(): RequestSpec {
    const n = this.#next++;
    const slot = this.slots[n % this.slots.length]!;
    return specOf(slot, Math.floor(n / this.slots.length));
  }
}

export function plan(...slots: Slot[]): RequestPlan {
  return new RequestPlan(slots);
}

/** The TypeScript twin of the Lua generators below, for probes (and kept in step by the smoke run's status check). */
function specOf(slot: Slot, k: number): RequestSpec {
  switch (slot.kind) {
    case "fixed":
      return slot.spec;
    case "cycle":
      return slot.specs[k % slot.specs.length]!;
    case "once":
      return slot.specs[k] ?? slot.fallback;
    case "peers":
      return { ...slot.spec, headers: { ...slot.spec.headers, "X-Forwarded-For": peerAddress(slot.net, k % slot.pool) } };
    case "registrations": {
      const registration = {
        username: `${slot.prefix}n${k}`,
        password: `bench-password-${k}`,
        ip: `100.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`,
        mail: `${slot.prefix}n${k}@example.org`,
        auth_token: slot.authToken,
      };
      return { method: "POST", path: slot.path, body: Buffer.from(JSON.stringify(registration), "utf8").toString("base64") };
    }
  }
}

function peerAddress(net: string, k: number): string {
  const parts = net.split(".").length;
  const tail = [(k >> 16) & 255, (k >> 8) & 255, k & 255].slice(-(4 - parts));
  return [net, ...tail].join(".");
}

export interface LoadOptions {
  url: string;
  connections: number;
  plan: RequestPlan;
  /** Seconds to run; with `amount`, an upper bound. */
  duration?: number;
  /** Responses to complete, then stop. */
  amount?: number;
}

export interface Measurement {
  requests: number;
  seconds: number;
  reqPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  statusCounts: Record<string, number>;
  errors: number;
  timeouts: number;
  /** Cores' worth of CPU used during the run, by the bench's processes and by everything else. */
  cpu?: CpuShares;
}

/** One wrk run as it came, with its latency histogram (microsecond buckets, wrk's own resolution). */
export interface RawRun {
  requests: number;
  seconds: number;
  statusCounts: Record<string, number>;
  errors: number;
  timeouts: number;
  /** Latency histogram: microseconds → responses. */
  latencyUs: Map<number, number>;
  cpu?: CpuShares;
}

function percentile(sorted: [number, number][], total: number, q: number): number {
  if (total === 0) return 0;
  const rank = Math.min(total, Math.max(1, Math.ceil(q * total)));
  let seen = 0;
  for (const [us, n] of sorted) {
    seen += n;
    if (seen >= rank) return us / 1000;
  }
  return sorted[sorted.length - 1]![0] / 1000;
}

/** Several runs of one target (rounds interleaved with other targets) as one measurement. */
export function summarize(runs: readonly RawRun[]): Measurement {
  const requests = runs.reduce((sum, r) => sum + r.requests, 0);
  const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
  const statusCounts: Record<string, number> = {};
  for (const run of runs) for (const [status, n] of Object.entries(run.statusCounts)) statusCounts[status] = (statusCounts[status] ?? 0) + n;
  const merged = new Map<number, number>();
  for (const run of runs) for (const [us, n] of run.latencyUs) merged.set(us, (merged.get(us) ?? 0) + n);
  const sorted = [...merged].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((sum, [, n]) => sum + n, 0);
  const measurement: Measurement = {
    requests,
    seconds,
    reqPerSec: seconds > 0 ? requests / seconds : 0,
    p50Ms: percentile(sorted, total, 0.5),
    p90Ms: percentile(sorted, total, 0.9),
    p99Ms: percentile(sorted, total, 0.99),
    maxMs: percentile(sorted, total, 1),
    statusCounts,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    timeouts: runs.reduce((sum, r) => sum + r.timeouts, 0),
  };
  const withCpu = runs.filter((r) => r.cpu);
  if (withCpu.length > 0) {
    // Weighted by each run's length, so the figure is the average over all measured time.
    const weight = withCpu.reduce((sum, r) => sum + r.seconds, 0) || 1;
    const processes: Record<string, number> = {};
    let other = 0;
    let steal = 0;
    for (const run of withCpu) {
      const w = run.seconds / weight;
      for (const [name, cores] of Object.entries(run.cpu!.processes)) processes[name] = (processes[name] ?? 0) + cores * w;
      other += run.cpu!.other * w;
      steal += run.cpu!.steal * w;
    }
    measurement.cpu = { processes, other, steal };
  }
  return measurement;
}

// ---- the Lua side -------------------------------------------------------------------------------

/** A Lua string literal for any bytes (requests are ASCII, but nothing here relies on it). */
function lua(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, "utf8")) {
    if (byte === 0x22 || byte === 0x5c) out += "\\" + String.fromCharCode(byte);
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += "\\" + String(byte).padStart(3, "0");
  }
  return out + '"';
}

function rawRequest(spec: RequestSpec, host: string, extraHeader = ""): { head: string; body: string } {
  const body = spec.body ?? "";
  let head = `${spec.method} ${spec.path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [name, value] of Object.entries(spec.headers ?? {})) head += `${name}: ${value}\r\n`;
  if (spec.method === "POST" || body.length > 0) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return { head: head + extraHeader, body };
}

function formatRaw(spec: RequestSpec, host: string): string {
  const { head, body } = rawRequest(spec, host);
  return `${head}\r\n${body}`;
}

/** Lists go to a file the script reads at start (a literal of 50,000 strings is too much for LuaJIT). */
function listFile(dir: string, name: string, requests: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, requests.map((r) => `${Buffer.byteLength(r)}\n${r}`).join(""));
  return file;
}

const LUA_PRELUDE = `
local bit = require("bit")
local function readList(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  local list, pos = {}, 1
  while pos <= #data do
    local nl = data:find("\\n", pos, true)
    local len = tonumber(data:sub(pos, nl - 1))
    list[#list + 1] = data:sub(nl + 1, nl + len)
    pos = nl + 1 + len
  end
  return list
end
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out, n = {}, #s
  for i = 1, n, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = bit.bor(bit.lshift(a, 16), bit.lshift(b or 0, 8), c or 0)
    local e = {}
    for j = 0, 3 do e[j + 1] = bit.band(bit.rshift(v, 18 - 6 * j), 63) + 1 end
    out[#out + 1] = B64:sub(e[1], e[1]) .. B64:sub(e[2], e[2]) ..
      (b and B64:sub(e[3], e[3]) or "=") .. (c and B64:sub(e[4], e[4]) or "=")
  end
  return table.concat(out)
end
`;

/** Lua for one slot: an expression for a function(k) returning the raw request. */
function luaSlot(slot: Slot, host: string, dir: string, index: number): { setup: string; fn: string } {
  switch (slot.kind) {
    case "fixed":
      return { setup: "", fn: `function(k) return ${lua(formatRaw(slot.spec, host))} end` };
    case "cycle": {
      const file = listFile(dir, `slot${index}.txt`, slot.specs.map((s) => formatRaw(s, host)));
      return { setup: `local list${index} = readList(${lua(file)})`, fn: `function(k) return list${index}[(k % #list${index}) + 1] end` };
    }
    case "once": {
      const file = listFile(dir, `slot${index}.txt`, slot.specs.map((s) => formatRaw(s, host)));
      return {
        setup: `local list${index} = readList(${lua(file)})`,
        fn: `function(k) return list${index}[k + 1] or ${lua(formatRaw(slot.fallback, host))} end`,
      };
    }
    case "peers": {
      const { head, body } = rawRequest(slot.spec, host);
      const octets = 4 - slot.net.split(".").length;
      const parts = [`bit.band(bit.rshift(p, 16), 255)`, `bit.band(bit.rshift(p, 8), 255)`, `bit.band(p, 255)`].slice(-octets);
      return {
        setup: "",
        fn: `function(k) local p = k % ${slot.pool}; return ${lua(`${head}X-Forwarded-For: ${slot.net}`)} .. "." .. ${parts.join(' .. "." .. ')} .. ${lua(`\r\n\r\n${body}`)} end`,
      };
    }
    case "registrations": {
      const head = `POST ${slot.path} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: `;
      return {
        setup: "",
        fn: `function(k)
    local ip = "100." .. (64 + bit.band(bit.rshift(k, 16), 63)) .. "." .. bit.band(bit.rshift(k, 8), 255) .. "." .. bit.band(k, 255)
    local json = '{"username":"${slot.prefix}n' .. k .. '","password":"bench-password-' .. k .. '","ip":"' .. ip ..
      '","mail":"${slot.prefix}n' .. k .. '@example.org","auth_token":' .. ${lua(JSON.stringify(slot.authToken))} .. '}'
    local body = base64(json)
    return ${lua(head)} .. #body .. "\\r\\n\\r\\n" .. body
  end`,
      };
    }
  }
}

/** The script of one run: requests from the plan's current position, statuses counted, results printed as JSON. */
function luaScript(options: LoadOptions, dir: string): string {
  const host = new URL(options.url).host;
  const { slots } = options.plan;
  const parts: string[] = [LUA_PRELUDE];
  const only = slots.length === 1 ? slots[0]! : null;
  if (only?.kind === "fixed") {
    // A static request: wrk formats it once and sends the same bytes every time (its fastest path).
    const spec = only.spec;
    parts.push(`wrk.method = ${lua(spec.method)}`, `wrk.path = ${lua(spec.path)}`);
    for (const [name, value] of Object.entries(spec.headers ?? {})) parts.push(`wrk.headers[${lua(name)}] = ${lua(value)}`);
    if (spec.body !== undefined) parts.push(`wrk.body = ${lua(spec.body)}`);
  } else {
    const compiled = slots.map((slot, i) => luaSlot(slot, host, dir, i));
    parts.push(...compiled.map((c) => c.setup));
    parts.push(`local slots = { ${compiled.map((c) => c.fn).join(",\n")} }`);
    parts.push(`local nslots = #slots`);
    parts.push(`local n = ${options.plan.next}`);
    parts.push(`function request()
  local i = n % nslots
  local k = (n - i) / nslots
  n = n + 1
  return slots[i + 1](k)
end`);
  }
  parts.push(`
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
statuses = {}
local answered, amount = 0, ${options.amount ?? 0}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if amount > 0 then
    answered = answered + 1
    if answered == amount then
      -- wrk's main thread sleeps out the duration whatever its threads do: the bench ends the run (SIGINT).
      io.write("\\nBENCH-AMOUNT-REACHED\\n")
      io.stdout:flush()
      wrk.thread:stop()
    end
  end
end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do counts[#counts + 1] = '"' .. status .. '":' .. count end
  end
  local buckets, i = {}, 1
  while true do
    local us, count = latency(i)
    if us == nil or us == 0 or count == nil or count == 0 then break end
    buckets[#buckets + 1] = us .. "," .. count
    i = i + 1
  end
  local e = summary.errors
  io.write(string.format('\\nBENCH-RESULT {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"statuses":{%s},"latency":[%s]}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, table.concat(counts, ","), table.concat(buckets, ",")))
end
`);
  return parts.join("\n");
}

interface WrkResult {
  requests: number;
  durationUs: number;
  connect: number;
  read: number;
  write: number;
  timeout: number;
  statuses: Record<string, number>;
  latency: number[];
}

/** CPUs the load generator is pinned to (BENCH_CLIENT_CPUS, a taskset list), or none. */
export const CLIENT_CPUS = process.env["BENCH_CLIENT_CPUS"] ?? "";

function hasTaskset(): boolean {
  return spawnSync("taskset", ["--version"]).status === 0;
}
const TASKSET = CLIENT_CPUS !== "" && hasTaskset();

/** One thread is enough for loopback HTTP here, and each more thread is a core taken from the server. */
export function wrkCommand(options: LoadOptions, script: string): string[] {
  const seconds = Math.max(1, Math.ceil(options.duration ?? (options.amount !== undefined ? 3600 : 10)));
  const args = [WRK, "-t1", `-c${options.connections}`, `-d${seconds}s`, "--timeout", "30s", "-s", script, options.url];
  return TASKSET ? ["taskset", "-c", CLIENT_CPUS, ...args] : args;
}

export interface RunningLoad {
  /** Ends a run early (a flood that lasts as long as other measurements). */
  stop(): void;
  done: Promise<RawRun>;
}

export function startLoad(options: LoadOptions): RunningLoad {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-wrk-"));
  const script = join(dir, "plan.lua");
  writeFileSync(script, luaScript(options, dir));
  const [command, ...args] = wrkCommand(options, script);
  const child = spawn(command!, args, { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    if (options.amount !== undefined && stdout.includes("BENCH-AMOUNT-REACHED")) child.kill("SIGINT");
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const done = new Promise<RawRun>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      rmSync(dir, { recursive: true, force: true });
      const line = stdout.split("\n").find((l) => l.startsWith("BENCH-RESULT "));
      if (!line) {
        reject(new Error(`wrk exited (code ${code}) without a result:\n${stdout}${stderr}\n(install it with: apt-get install wrk)`));
        return;
      }
      const result = JSON.parse(line.slice("BENCH-RESULT ".length)) as WrkResult;
      const latencyUs = new Map<number, number>();
      for (let i = 0; i + 1 < result.latency.length; i += 2) latencyUs.set(result.latency[i]!, result.latency[i + 1]!);
      // What was in flight when the run ended may have reached the server: never send it again.
      options.plan.advance(result.requests + options.connections);
      resolve({
        requests: result.requests,
        seconds: result.durationUs / 1e6,
        statusCounts: result.statuses,
        errors: result.connect + result.read + result.write,
        timeouts: result.timeout,
        latencyUs,
      });
    });
  });
  return {
    // wrk ends its run on SIGINT and still reports it.
    stop: () => child.kill("SIGINT"),
    done,
  };
}

export function runLoad(options: LoadOptions): Promise<RawRun> {
  return startLoad(options).done;
}

/** Share of the answers that had the status the scenario is about. */
export function expectedShare(measurement: Measurement, status: number): number {
  const total = Object.values(measurement.statusCounts).reduce((a, b) => a + b, 0) + measurement.errors;
  return total === 0 ? 0 : (measurement.statusCounts[String(status)] ?? 0) / total;
}

/** Sends one request outside any measurement: to learn the answer's size, and to check it. */
export async function probe(url: string, spec: RequestSpec): Promise<{ status: number; bytes: number; contentType: string }> {
  const response = await fetch(url + spec.path, {
    method: spec.method,
    headers: spec.headers,
    body: spec.method === "POST" && spec.body ? spec.body : undefined,
  });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, bytes: body.length, contentType: response.headers.get("content-type") ?? "text/plain" };
}

/** wrk answers; when it is missing and apt-get is at hand (CI, a Debian box run as root), it is installed. */
export function ensureWrk(log: (message: string) => void): void {
  if (!spawnSync(WRK, ["-v"]).error) return;
  if (WRK === "wrk" && process.getuid?.() === 0 && !spawnSync("apt-get", ["--version"]).error) {
    log("wrk is missing: apt-get install wrk");
    spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit" });
    spawnSync("apt-get", ["install", "-y", "-qq", "wrk"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    if (!spawnSync(WRK, ["-v"]).error) return;
  }
  throw new Error(`the load generator ${WRK} is not installed: apt-get install wrk (or set BENCH_WRK to its path)`);
}
