import { plan, RequestPlan, type RequestSpec } from "./load.ts";
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

const fixed = (spec: RequestSpec): RequestPlan => plan({ kind: "fixed", spec });

function registerRequest(registration: Registration, headers: Record<string, string> = {}): RequestSpec {
  return { method: "POST", path: BASE_PATH, headers, body: encodeRegistration(registration) };
}

/**
 * Bad auth_tokens are rate-limited per peer (429 after ten a minute), so the 401 scenario comes
 * through the trusted proxy header from a pool of peers (10.0.0.0–10.3.255.255) large enough that
 * none reaches ten in a minute below about 39,000 requests a second.
 */
const PEER_POOL = 262_144;

/**
 * The memory run's peers: few enough that its warm-up meets every one of them (a fifth of its
 * 100,000 requests are bad tokens), so the limiter's entries for them are there before the first
 * RSS reading and what grows after it grows with the number of requests, not with new peers.
 * Above about 2,700 bad tokens a second a peer reaches ten a minute and is answered 429 (a
 * refusal before the hash too), which the memory run accepts.
 */
export const MEMORY_PEER_POOL = 16_384;

export interface ScenarioInputs {
  /** Lower-case letters and digits that make this run's names and addresses its own. */
  runId: string;
  /** `ID/SECRET` of an API key, for the invites API. */
  apiKey: string;
}

export class ScenarioFactory {
  #throttleSeeds = 0;
  /** One plan of registrations for the whole run, so no user, address or IP is sent twice. */
  readonly #registrations: RequestPlan;

  constructor(private readonly inputs: ScenarioInputs) {
    this.#registrations = plan({ kind: "registrations", path: BASE_PATH, prefix: `u${inputs.runId}`, authToken: AUTH_TOKEN });
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

  #badAuth(): RequestSpec {
    const { runId } = this.inputs;
    return registerRequest({ username: `a${runId}`, password: "bench-password", ip: "203.0.113.20", mail: `a${runId}@example.org`, auth_token: "not-the-token" });
  }

  refused(): Scenario[] {
    const { runId } = this.inputs;
    const valid = encodeRegistration({ username: `m${runId}`, password: "bench-password", ip: "203.0.113.21", mail: `m${runId}@example.org`, auth_token: AUTH_TOKEN });
    return [
      { id: "refused-auth", label: "refused: bad auth_token", group: "refused", status: 401, plan: plan({ kind: "peers", spec: this.#badAuth(), pool: PEER_POOL, net: "10" }) },
      {
        id: "refused-blacklist",
        label: "refused: blacklisted IP",
        group: "refused",
        status: 403,
        plan: fixed(registerRequest({ username: `b${runId}`, password: "bench-password", ip: BLACKLISTED_IP, mail: `b${runId}@example.org`, auth_token: AUTH_TOKEN })),
      },
      {
        id: "refused-filtered",
        label: "refused: filtered mail",
        group: "refused",
        status: 403,
        plan: fixed(registerRequest({ username: `f${runId}`, password: "bench-password", ip: "203.0.113.22", mail: FILTERED_MAIL, auth_token: AUTH_TOKEN })),
      },
      {
        id: "refused-throttled",
        label: "refused: throttled IP",
        group: "refused",
        status: 503,
        plan: fixed(registerRequest({ username: `t${runId}`, password: "bench-password", ip: THROTTLED_IP, mail: `t${runId}@example.org`, auth_token: AUTH_TOKEN })),
      },
      {
        id: "refused-malformed",
        label: "refused: malformed base64",
        group: "refused",
        status: 400,
        // A registration's size, with characters no base64 alphabet has in the middle.
        plan: fixed({ method: "POST", path: BASE_PATH, body: `${valid.slice(0, 60)}!*${valid.slice(62)}` }),
      },
    ];
  }

  /** The five refusals in turn, for the memory run and for warming up a fresh server. */
  refusedMix(): RequestPlan {
    const others = this.refused().filter((s) => s.id !== "refused-auth");
    return new RequestPlan([
      { kind: "peers", spec: this.#badAuth(), pool: MEMORY_PEER_POOL, net: "10.251" },
      ...others.flatMap((s) => s.plan.slots),
    ]);
  }

  accepted(): Scenario {
    return { id: "accepted", label: "accepted registration", group: "accepted", status: 200, plan: this.#registrations };
  }

  /** The mailed link's confirm page; it changes nothing, so a small pool of tokens is reused. */
  verifyConfirm(tokens: readonly string[]): Scenario {
    return {
      id: "verify-confirm",
      label: "verify: confirm page (GET)",
      group: "verify",
      status: 200,
      plan: plan({ kind: "cycle", specs: tokens.map((token) => ({ method: "GET", path: `${BASE_PATH}verify/${token}` })) }),
    };
  }

  /**
   * Completion with a fresh token every time. A reused token would still get 200 ("already
   * active") and hide the mistake, so once the pool is used up the token is one that does not
   * exist, and the 404s show in the status check.
   */
  verifyComplete(tokens: readonly string[]): Scenario {
    const post = (token: string): RequestSpec => ({ method: "POST", path: `${BASE_PATH}verify/${token}` });
    return {
      id: "verify-complete",
      label: "verify: completion (POST)",
      group: "verify",
      status: 200,
      plan: plan({ kind: "once", specs: tokens.map(post), fallback: post("pool-used-up") }),
      // Same shape and length (43 characters), without taking tokens from gatehouse's pool.
      baselinePlan: plan({ kind: "cycle", specs: Array.from({ length: 1000 }, (_, j) => post(String(j).padStart(43, "x"))) }),
    };
  }

  invite(): Scenario {
    return {
      id: "invite",
      label: "invite via invites_api",
      group: "invite",
      status: 201,
      plan: fixed({ method: "POST", path: INVITES_PATH, headers: { Authorization: `Bearer ${this.inputs.apiKey}` } }),
    };
  }
}
