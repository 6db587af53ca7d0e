import type { RequestPlan, RequestSpec } from "./load.ts";
import { AUTH_TOKEN, BLACKLISTED_IP, FILTERED_MAIL, THROTTLED_IP } from "./processes.ts";

export type Group = "refused" | "accepted" | "verify" | "invite";

export interface Scenario {
  id: string;
  label: string;
  group: Group;
  /** The status every answer of the scenario must have; anything else means the bench is broken. */
  status: number;
  plan: RequestPlan;
  /** What the bare Koa baseline gets instead, where sending it the plan would use up what the plan hands out. */
  baselinePlan?: RequestPlan;
}

interface Registration {
  username: string;
  password: string;
  ip: string;
  mail: string;
  auth_token: string;
}

const BASE_PATH = "/register_account/";
const INVITES_PATH = "/invites_api";

/** As mod_register_json's websites send it: standard base64 of the JSON object. */
export function encodeRegistration(registration: Registration): string {
  return Buffer.from(JSON.stringify(registration), "utf8").toString("base64");
}

function registerRequest(registration: Registration, headers: Record<string, string> = {}): RequestSpec {
  return { method: "POST", path: BASE_PATH, headers, body: encodeRegistration(registration) };
}

/**
 * Bad auth_tokens are rate-limited per peer (429 after ten a minute), so the 401 scenario comes
 * through the trusted proxy header from a pool of peers large enough that none reaches ten in a
 * minute below about 9,800 requests a second.
 */
const PEER_POOL = 65_536;

/**
 * The memory run's peers: few enough that its warm-up meets every one of them (a fifth of its
 * 100,000 requests are bad tokens), so the limiter's entries for them are there before the first
 * RSS reading and what grows after it grows with the number of requests, not with new peers;
 * many enough that none reaches ten a minute below about 2,700 bad tokens a second.
 */
export const MEMORY_PEER_POOL = 16_384;

export interface ScenarioInputs {
  /** Lower-case letters and digits that make this run's names and addresses its own. */
  runId: string;
  /** `ID/SECRET` of an API key, for the invites API. */
  apiKey: string;
}

export class ScenarioFactory {
  #registered = 0;
  #peer = 0;
  #throttleSeeds = 0;

  constructor(private readonly inputs: ScenarioInputs) {}

  /** Every call a new user, end-user IP and address (100.64.0.0/10 holds four million). */
  nextRegistration(): RequestSpec {
    const n = this.#registered++;
    const { runId } = this.inputs;
    return registerRequest({
      username: `u${runId}n${n}`,
      password: `bench-password-${n}`,
      ip: `100.${64 + ((n >> 16) & 63)}.${(n >> 8) & 255}.${n & 255}`,
      mail: `u${runId}n${n}@example.org`,
      auth_token: AUTH_TOKEN,
    });
  }

  /** A registration from the throttled IP that is accepted: the one that starts its throttle window. */
  throttleSeed(): RequestSpec {
    const n = this.#throttleSeeds++;
    const { runId } = this.inputs;
    return registerRequest({
      username: `t${runId}seed${n}`,
      password: "bench-password",
      ip: THROTTLED_IP,
      mail: `t${runId}seed${n}@example.org`,
      auth_token: AUTH_TOKEN,
    });
  }

  #badAuth(pool: { size: number; net: string }): RequestSpec {
    const k = this.#peer++ % pool.size;
    const { runId } = this.inputs;
    return registerRequest(
      { username: `a${runId}`, password: "bench-password", ip: "203.0.113.20", mail: `a${runId}@example.org`, auth_token: "not-the-token" },
      { "X-Forwarded-For": `${pool.net}.${k >> 8}.${k & 255}` },
    );
  }

  refused(): Scenario[] {
    const { runId } = this.inputs;
    const valid = encodeRegistration({ username: `m${runId}`, password: "bench-password", ip: "203.0.113.21", mail: `m${runId}@example.org`, auth_token: AUTH_TOKEN });
    return [
      { id: "refused-auth", label: "refused: bad auth_token", group: "refused", status: 401, plan: [() => this.#badAuth({ size: PEER_POOL, net: "10.250" })] },
      {
        id: "refused-blacklist",
        label: "refused: blacklisted IP",
        group: "refused",
        status: 403,
        plan: [registerRequest({ username: `b${runId}`, password: "bench-password", ip: BLACKLISTED_IP, mail: `b${runId}@example.org`, auth_token: AUTH_TOKEN })],
      },
      {
        id: "refused-filtered",
        label: "refused: filtered mail",
        group: "refused",
        status: 403,
        plan: [registerRequest({ username: `f${runId}`, password: "bench-password", ip: "203.0.113.22", mail: FILTERED_MAIL, auth_token: AUTH_TOKEN })],
      },
      {
        id: "refused-throttled",
        label: "refused: throttled IP",
        group: "refused",
        status: 503,
        plan: [registerRequest({ username: `t${runId}`, password: "bench-password", ip: THROTTLED_IP, mail: `t${runId}@example.org`, auth_token: AUTH_TOKEN })],
      },
      {
        id: "refused-malformed",
        label: "refused: malformed base64",
        group: "refused",
        status: 400,
        // A registration's size, with characters no base64 alphabet has in the middle.
        plan: [{ method: "POST", path: BASE_PATH, body: `${valid.slice(0, 60)}!*${valid.slice(62)}` }],
      },
    ];
  }

  /** The five refusals in turn, for the memory run and for warming up a fresh server. */
  refusedMix(): RequestPlan {
    const others = this.refused().filter((s) => s.id !== "refused-auth");
    return [() => this.#badAuth({ size: MEMORY_PEER_POOL, net: "10.251" }), ...others.flatMap((s) => s.plan)];
  }

  accepted(): Scenario {
    return { id: "accepted", label: "accepted registration", group: "accepted", status: 200, plan: [() => this.nextRegistration()] };
  }

  /** The mailed link's confirm page; it changes nothing, so a small pool of tokens is reused. */
  verifyConfirm(tokens: readonly string[]): Scenario {
    let i = 0;
    return {
      id: "verify-confirm",
      label: "verify: confirm page (GET)",
      group: "verify",
      status: 200,
      plan: [() => ({ method: "GET", path: `${BASE_PATH}verify/${tokens[i++ % tokens.length]}` })],
    };
  }

  /**
   * Completion with a fresh token every time. A reused token would still get 200 ("already
   * active") and hide the mistake, so once the pool is used up the token is one that does not
   * exist, and the 404s show in the status check.
   */
  verifyComplete(tokens: readonly string[]): Scenario {
    let i = 0;
    let j = 0;
    return {
      id: "verify-complete",
      label: "verify: completion (POST)",
      group: "verify",
      status: 200,
      plan: [() => ({ method: "POST", path: `${BASE_PATH}verify/${tokens[i++] ?? "pool-used-up"}` })],
      // Same shape and length (43 characters), without taking tokens from gatehouse's pool.
      baselinePlan: [() => ({ method: "POST", path: `${BASE_PATH}verify/${String(j++).padStart(43, "x")}` })],
    };
  }

  invite(): Scenario {
    return {
      id: "invite",
      label: "invite via invites_api",
      group: "invite",
      status: 201,
      plan: [{ method: "POST", path: INVITES_PATH, headers: { Authorization: `Bearer ${this.inputs.apiKey}` } }],
    };
  }
}
