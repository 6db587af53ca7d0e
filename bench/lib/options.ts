import { parseArgs } from "node:util";

export interface BenchOptions {
  smoke: boolean;
  /** Seconds each scenario is measured, gatehouse and baseline alike. */
  duration: number;
  /** Seconds of the same load before each measurement, not counted. */
  warmup: number;
  /**
   * Rounds a measurement is split into, alternating between what is compared (gatehouse and its
   * baseline), so a machine whose speed drifts (shared cores, a busy host) skews both alike.
   */
  rounds: number;
  connections: number;
  /** Refused requests driven between the two RSS readings. */
  memoryRequests: number;
  /** Refused requests driven before the first RSS reading. */
  memoryWarmupRequests: number;
  seedAccounts: number;
  seedPending: number;
  /** Scenario ids (or group names) to run; empty runs everything. */
  only: string[];
  /** Start the gatehouse server under `node --cpu-prof`, one server and one profile per scenario. */
  profile: boolean;
  /** Keep the temporary directory (config, database, log) for a look afterwards. */
  keep: boolean;
  help: boolean;
}

export const USAGE = `usage: node --import tsx bench/run.ts [options]     (npm run bench [-- options])

  --smoke                a short run: 1 s per scenario and baseline, small memory run and seed;
                         targets reported, not enforced
  --duration S           seconds measured per scenario, whole     BENCH_DURATION         10 (smoke 1)
  --warmup S             unmeasured load before each measurement  BENCH_WARMUP           2 (smoke 0)
  --rounds N             rounds alternating gatehouse and its     BENCH_ROUNDS           5 (smoke 1)
                         baseline, adding up to --duration
  --connections N        connections for every scenario           BENCH_CONNECTIONS      10
  --memory-requests N    refused requests between RSS readings    BENCH_MEMORY_REQUESTS  1000000 (smoke 10000)
  --seed-accounts N      accounts in the seeded store             BENCH_SEED_ACCOUNTS    1000000 (smoke 20000)
  --seed-pending N       pending registrations in the seeded one  BENCH_SEED_PENDING     100000 (smoke 2000)
  --only LIST            comma-separated scenario ids (refused-auth, accepted, verify-complete, ...),
                         groups (refused, accepted, verify, invite), phases (cold, empty, flood, memory, workers,
                         verify, workers, seeded) or phase/id (seeded/accepted)
  --profile              run gatehouse under node --cpu-prof, one process and profile per scenario,
                         written to bench/results/ and summarised
  --keep                 keep the temporary directory (configs, databases, server logs)
`;

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a non-negative number, not ${JSON.stringify(raw)}`);
  return value;
}

/** Flags win over the environment, which wins over the defaults of the mode. */
export function readOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: "boolean", default: false },
      duration: { type: "string" },
      warmup: { type: "string" },
      rounds: { type: "string" },
      connections: { type: "string" },
      "memory-requests": { type: "string" },
      "seed-accounts": { type: "string" },
      "seed-pending": { type: "string" },
      only: { type: "string" },
      profile: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  const smoke = values.smoke === true;
  const memoryRequests = positive("--memory-requests", values["memory-requests"] ?? env["BENCH_MEMORY_REQUESTS"], smoke ? 10_000 : 1_000_000);
  const duration = Math.max(1, Math.ceil(positive("--duration", values.duration ?? env["BENCH_DURATION"], smoke ? 1 : 10)));
  return {
    smoke,
    // wrk takes whole seconds.
    duration,
    warmup: Math.ceil(positive("--warmup", values.warmup ?? env["BENCH_WARMUP"], smoke ? 0 : 2)),
    rounds: Math.min(duration, Math.max(1, Math.round(positive("--rounds", values.rounds ?? env["BENCH_ROUNDS"], smoke ? 1 : 5)))),
    connections: Math.max(1, Math.round(positive("--connections", values.connections ?? env["BENCH_CONNECTIONS"], 10))),
    memoryRequests: Math.round(memoryRequests),
    memoryWarmupRequests: smoke ? 2_000 : 100_000,
    seedAccounts: Math.round(positive("--seed-accounts", values["seed-accounts"] ?? env["BENCH_SEED_ACCOUNTS"], smoke ? 20_000 : 1_000_000)),
    seedPending: Math.round(positive("--seed-pending", values["seed-pending"] ?? env["BENCH_SEED_PENDING"], smoke ? 2_000 : 100_000)),
    only: (values.only ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0),
    profile: values.profile === true,
    keep: values.keep === true,
    help: values.help === true,
  };
}
