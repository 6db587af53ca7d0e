import autocannon from "autocannon";
import type { CpuShares } from "./processes.ts";

export interface RequestSpec {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * What the connections send, in turn: a fixed request is encoded once; a function is called for
 * every request sent, for scenarios where each request must differ (a new user, a fresh token).
 */
export type RequestPlan = ReadonlyArray<RequestSpec | (() => RequestSpec)>;

export interface LoadOptions {
  url: string;
  connections: number;
  plan: RequestPlan;
  /** Seconds to run; ignored when `amount` is given. */
  duration?: number;
  /** Requests to complete, whatever the time it takes. */
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

/** One autocannon run as it came: what arrived, with every response's time in milliseconds. */
export interface RawRun {
  requests: number;
  seconds: number;
  statusCounts: Record<string, number>;
  errors: number;
  timeouts: number;
  /**
   * autocannon's own latency histogram keeps whole milliseconds, which flattens every refusal to
   * 0 or 1 ms; the float times it reports per response are kept instead.
   */
  latencies: Float64Array;
  cpu?: CpuShares;
}

class LatencyRecorder {
  #values = new Float64Array(1 << 16);
  #length = 0;

  record(ms: number): void {
    if (this.#length === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#length++] = ms;
  }

  values(): Float64Array {
    return this.#values.slice(0, this.#length);
  }
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Several runs of one target (rounds interleaved with other targets) as one measurement. */
export function summarize(runs: readonly RawRun[]): Measurement {
  const requests = runs.reduce((sum, r) => sum + r.requests, 0);
  const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
  const statusCounts: Record<string, number> = {};
  for (const run of runs) for (const [status, n] of Object.entries(run.statusCounts)) statusCounts[status] = (statusCounts[status] ?? 0) + n;
  const all = new Float64Array(runs.reduce((sum, r) => sum + r.latencies.length, 0));
  let offset = 0;
  for (const run of runs) {
    all.set(run.latencies, offset);
    offset += run.latencies.length;
  }
  all.sort();
  const measurement: Measurement = {
    requests,
    seconds,
    reqPerSec: seconds > 0 ? requests / seconds : 0,
    p50Ms: percentile(all, 0.5),
    p90Ms: percentile(all, 0.9),
    p99Ms: percentile(all, 0.99),
    maxMs: percentile(all, 1),
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

function toAutocannonRequests(plan: RequestPlan): autocannon.Request[] {
  return plan.map((entry) => {
    if (typeof entry !== "function") return { ...entry };
    return { setupRequest: (request) => ({ ...request, ...withHeaders(entry()) }) };
  });
}

function withHeaders(spec: RequestSpec): autocannon.RawRequest {
  return { method: spec.method, path: spec.path, headers: spec.headers ?? {}, body: spec.body ?? "" };
}

export interface RunningLoad {
  /** Ends a run early (a flood that lasts as long as other measurements). */
  stop(): void;
  done: Promise<RawRun>;
}

export function startLoad(options: LoadOptions): RunningLoad {
  const latencies = new LatencyRecorder();
  let instance: autocannon.Instance | null = null;
  const done = new Promise<RawRun>((resolve, reject) => {
    instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        // autocannon refuses an explicit undefined for either.
        ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.duration ?? 10 }),
        timeout: 30,
        requests: toAutocannonRequests(options.plan),
      },
      (err, result) => {
        if (err) {
          reject(err);
          return;
        }
        const statusCounts: Record<string, number> = {};
        for (const [status, { count }] of Object.entries(result.statusCodeStats)) statusCounts[status] = Number(count);
        resolve({
          requests: result.requests.total,
          seconds: (result.finish.getTime() - result.start.getTime()) / 1000,
          statusCounts,
          errors: result.errors,
          timeouts: result.timeouts,
          latencies: latencies.values(),
        });
      },
    );
    instance.on("response", (_client, _status, _bytes, responseTime) => latencies.record(responseTime));
  });
  return {
    stop: () => instance?.stop(),
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

/** Sends one request of a plan outside any measurement: to learn the answer's size, and to check it. */
export async function probe(url: string, spec: RequestSpec): Promise<{ status: number; bytes: number; contentType: string }> {
  const response = await fetch(url + spec.path, {
    method: spec.method,
    headers: spec.headers,
    body: spec.method === "POST" && spec.body ? spec.body : undefined,
  });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, bytes: body.length, contentType: response.headers.get("content-type") ?? "text/plain" };
}

export function firstSpec(plan: RequestPlan): RequestSpec {
  const entry = plan[0];
  if (!entry) throw new Error("empty request plan");
  return typeof entry === "function" ? entry() : entry;
}
