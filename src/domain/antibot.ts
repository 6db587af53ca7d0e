import { createChallenge, verifySolution, type Challenge } from "altcha-lib";
import { deriveKey } from "altcha-lib/algorithms/sha";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { addressKey } from "./filters.ts";
import { POW_CHALLENGE_TTL_SECONDS, type FormLimiters } from "./limiter.ts";
import type { Clock, EventLog, RandomSource } from "./ports.ts";
import type { PowKeys } from "./secrets.ts";

// ALTCHA proof of work on gatehouse's own public forms (DESIGN §11): the invite page, the verify form
// and the resend form. The mod_register_json API is server to server and never asks for one.
// SHA-256 with one round per try, in deterministic mode: the server draws the counter the browser
// must reach, so the work is bounded by antibot.complexity, and with the derived key signed a check
// costs one HMAC.

export interface AntibotDeps {
  config: Pick<Config, "antibot" | "register">;
  formLimiters: FormLimiters;
  powKeys: PowKeys;
  clock: Clock;
  random: RandomSource;
  log: EventLog;
}

const ALGORITHM = "SHA-256";
/** Everything the widget sends fits in well under this; more is not a payload. */
const MAX_PAYLOAD_LENGTH = 4096;
const ALL = "*";

/** Why a proof of work was refused, for the metrics and the log. */
export type PowRefusal = "missing" | "malformed" | "forged" | "expired" | "replayed";

export class PowRefused extends AppError {
  constructor(readonly reason: PowRefusal, message: string) {
    super(reason === "missing" ? "POW_REQUIRED" : "POW_INVALID", message, { detail: reason });
  }
}

/** Whether a form shown to `ip` now asks for a proof of work. */
export async function powRequired(deps: Pick<AntibotDeps, "config" | "formLimiters">, ip: string): Promise<boolean> {
  const mode = deps.config.antibot.proofOfWork;
  if (mode !== "auto") return mode === "always";
  const [own, everyone] = await Promise.all([
    deps.formLimiters.powOn.blockedFor(addressKey(ip, deps.config.register.ipv6Prefix)),
    deps.formLimiters.powOn.blockedFor(ALL),
  ]);
  return own !== null || everyone !== null;
}

/** A signed challenge for the widget, good for POW_CHALLENGE_TTL_SECONDS. */
export function issueChallenge(deps: Pick<AntibotDeps, "config" | "powKeys" | "clock" | "random">): Promise<Challenge> {
  const max = deps.config.antibot.complexity;
  const min = Math.ceil(max / 2);
  return createChallenge({
    algorithm: ALGORITHM,
    cost: 1,
    counter: min + (deps.random(4).readUInt32BE(0) % (max - min + 1)),
    deriveKey,
    expiresAt: Math.floor(deps.clock.now() / 1000) + POW_CHALLENGE_TTL_SECONDS,
    hmacSignatureSecret: deps.powKeys.challenge,
    hmacKeySignatureSecret: deps.powKeys.derivedKey,
  });
}

/**
 * Marks a limit as tripped for "auto": from now on, for antibot.auto.holdSeconds, the forms ask
 * `ip` (or, with `everyone`, every address) for a proof of work.
 */
export async function notePowTrigger(deps: Pick<AntibotDeps, "config" | "formLimiters" | "log">, ip: string, everyone = false): Promise<void> {
  if (deps.config.antibot.proofOfWork !== "auto") return;
  const key = everyone ? ALL : addressKey(ip, deps.config.register.ipv6Prefix);
  if ((await deps.formLimiters.powOn.blockedFor(key)) !== null) return;
  await deps.formLimiters.powOn.take(key);
  deps.log.info({ event: "pow-auto-on", scope: everyone ? "everyone" : "address", ip: everyone ? undefined : ip, holdSeconds: deps.config.antibot.auto.holdSeconds }, "proof of work turned on");
}

interface Payload {
  challenge: Challenge;
  solution: { counter: number; derivedKey: string; time?: number };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** The widget's field: base64 of `{challenge: {parameters, signature}, solution: {counter, derivedKey}}`. */
function decodePayload(text: string): Payload | null {
  if (text.length > MAX_PAYLOAD_LENGTH || !/^[A-Za-z0-9+/=\s]+$/.test(text)) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, "base64").toString("utf8"));
  } catch {
    return null;
  }
  if (!isRecord(value) || !isRecord(value["challenge"]) || !isRecord(value["solution"])) return null;
  const { parameters, signature } = value["challenge"];
  const { counter, derivedKey } = value["solution"];
  if (!isRecord(parameters) || typeof signature !== "string" || typeof counter !== "number" || typeof derivedKey !== "string") return null;
  return value as unknown as Payload;
}

/**
 * One submission of a public form from `ip`: counted for "auto" (and past a limit the proof of work
 * goes on, this request included), then, when the form asks for a proof of work, the widget's
 * `payload` must be a solution of a challenge we signed, not expired and never used before.
 * Resolves "solved" or "not-asked"; refuses with PowRefused.
 */
export async function guardForm(deps: AntibotDeps, ip: string, payload: string | undefined): Promise<"solved" | "not-asked"> {
  const { config, formLimiters } = deps;
  if (config.antibot.proofOfWork === "auto") {
    const [own, everyone] = await Promise.all([
      formLimiters.perAddress.take(addressKey(ip, config.register.ipv6Prefix)),
      formLimiters.perForm.take(ALL),
    ]);
    if (own !== null) await notePowTrigger(deps, ip);
    if (everyone !== null) await notePowTrigger(deps, ip, true);
  }
  if (!(await powRequired(deps, ip))) return "not-asked";
  if (payload === undefined || payload.trim() === "") {
    throw new PowRefused("missing", "this form needs a proof of work that your browser computes with JavaScript; enable JavaScript, wait for the check to finish and send the form again");
  }
  const decoded = decodePayload(payload.trim());
  if (!decoded) throw new PowRefused("malformed", "the proof of work is not valid; let the check run again and send the form again");
  const expiresAt = decoded.challenge.parameters.expiresAt;
  if (typeof expiresAt !== "number" || expiresAt * 1000 <= deps.clock.now()) {
    throw new PowRefused("expired", "the proof of work has expired; let the check run again and send the form again");
  }
  const result = await verifySolution({
    challenge: decoded.challenge,
    solution: decoded.solution,
    deriveKey,
    hmacSignatureSecret: deps.powKeys.challenge,
    hmacKeySignatureSecret: deps.powKeys.derivedKey,
  }).catch(() => null);
  if (!result?.verified) {
    if (result?.expired) throw new PowRefused("expired", "the proof of work has expired; let the check run again and send the form again");
    throw new PowRefused("forged", "the proof of work is not valid; let the check run again and send the form again");
  }
  // Single use: the signature is remembered (in the limiters' backing, so across instances with Redis) until the challenge expires.
  if ((await formLimiters.powUsed.take(decoded.challenge.signature!)) !== null) {
    throw new PowRefused("replayed", "this proof of work was used already; let the check run again and send the form again");
  }
  return "solved";
}
