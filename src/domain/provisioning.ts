import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import { nameHeldError } from "./accounts.ts";
import { PROVISION_TAKEN, type NewOutboxItem, type ProvisionJobState, type Store } from "../store/store.ts";
import type { AccountTarget, Availability } from "../accounts/target.ts";
import { withTimeout } from "../accounts/target.ts";
import type { EventLog, PayloadSealer, TargetDirectory } from "./ports.ts";

// Accounts downstream (DESIGN §9): the name is checked on every target before a registration or an
// invite is accepted; completing queues one job per target in the completing transaction and waits
// a while for them; the outbox sender (mail/outbox.ts) runs the jobs with the targets' clients.

/** What a provision job carries, sealed: only what its own target needs. */
export type ProvisionPayload =
  | { op: "create"; username: string; passwordHash: string; password?: string; mail?: string }
  | { op: "remove"; username: string };

/** What a pending registration keeps sealed while a target needs it in the clear. */
export interface ProvisionSecret {
  passwordHash?: string;
  password?: string;
  mail?: string;
}

export interface ProvisionDeps {
  targets: TargetDirectory;
  sealer: PayloadSealer;
}

/** Seconds a refusal for an unanswering target asks the client to wait. */
const UNAVAILABLE_RETRY_AFTER = 30;

/**
 * Asks every target whether the name is free there: taken anywhere is 409 as row 12; a target that
 * does not answer within its timeout is 503 with Retry-After, and the caller stores nothing.
 */
export async function refuseNameTakenDownstream(deps: Pick<ProvisionDeps, "targets"> & { log: EventLog }, username: string): Promise<void> {
  const targets = deps.targets.list();
  if (targets.length === 0) return;
  const answers = await Promise.all(targets.map(async (target): Promise<[AccountTarget, Availability]> => {
    try {
      // The clients keep their own timeouts; this one bounds a client that would not.
      return [target, await withTimeout(target.check(username), 60_000, `${target.name} check`)];
    } catch {
      return [target, "unknown"];
    }
  }));
  for (const [target, availability] of answers) {
    if (availability === "unknown") deps.log.info({ event: "provision-check", target: target.name, outcome: "unknown" }, "account server did not answer");
  }
  if (answers.some(([, availability]) => availability === "taken")) throw nameHeldError({ holder: "account", lookalike: false }, "USERNAME_TAKEN");
  if (answers.some(([, availability]) => availability === "unknown")) {
    throw new AppError("ACCOUNT_SERVER_UNAVAILABLE", "an account server did not answer; try again shortly", { retryAfter: UNAVAILABLE_RETRY_AFTER });
  }
}

/**
 * What waits, sealed, with a pending registration for the jobs made at completion: the hash, and the
 * password and address only when a target needs them in the clear. With `keepMail` the address is
 * kept whatever the targets need: a registration that will wait for approval is mailed the outcome
 * (DESIGN §11), and createJobs still hands it only to targets that need it. Null when nothing is to be kept.
 */
export function sealProvisionSecret(
  deps: ProvisionDeps,
  passwordHash: string,
  password: string,
  mail: string | null,
  options: { keepMail?: boolean } = {},
): string | null {
  const targets = deps.targets.list();
  const keepMail = mail !== null && options.keepMail === true;
  if (targets.length === 0 && !keepMail) return null;
  const secret: ProvisionSecret = { passwordHash };
  if (targets.some((target) => target.needsPassword)) secret.password = password;
  if (mail !== null && (keepMail || targets.some((target) => target.needsMail))) secret.mail = mail;
  return deps.sealer.seal(JSON.stringify(secret));
}

export function openProvisionSecret(deps: Pick<ProvisionDeps, "sealer">, sealed: string | null): ProvisionSecret {
  return sealed === null ? {} : (JSON.parse(deps.sealer.open(sealed)) as ProvisionSecret);
}

function job(deps: Pick<ProvisionDeps, "sealer">, target: AccountTarget, payload: ProvisionPayload, now: number): NewOutboxItem {
  return { kind: "provision", target: target.name, payload: deps.sealer.seal(JSON.stringify(payload)), createdAt: now };
}

/** One create job per target, each sealed with only what that target needs. */
export function createJobs(deps: ProvisionDeps, username: string, secret: ProvisionSecret, now: number): NewOutboxItem[] {
  return deps.targets.list().map((target) => {
    const payload: ProvisionPayload = { op: "create", username, passwordHash: secret.passwordHash ?? "" };
    if (target.needsPassword && secret.password !== undefined) payload.password = secret.password;
    if (target.needsMail && secret.mail !== undefined) payload.mail = secret.mail;
    return job(deps, target, payload, now);
  });
}

/** One remove job per target but `except` (the one that said the name is someone else's). */
export function removeJobs(deps: ProvisionDeps, username: string, now: number, except?: string): NewOutboxItem[] {
  return deps.targets.list()
    .filter((target) => target.name !== except)
    .map((target) => job(deps, target, { op: "remove", username }, now));
}

export type ProvisionResult = "ready" | "shortly" | "taken";

export interface AwaitDeps {
  config: Pick<Config, "accounts">;
  store: Pick<Store, "listProvisionJobs">;
  targets: TargetDirectory;
}

const POLL_MS = 50;

/**
 * Waits up to accounts.provisionWaitMs for a new account's jobs (run by whichever process sends the
 * outbox, so the store is asked): all made → ready; a target said taken → taken (the sender has
 * already removed the account); otherwise → shortly.
 */
export async function awaitProvisioning(deps: AwaitDeps, userId: number, notify: () => void): Promise<ProvisionResult> {
  if (deps.targets.list().length === 0) return "ready";
  notify();
  const deadline = performance.now() + deps.config.accounts.provisionWaitMs;
  for (;;) {
    const jobs = await deps.store.listProvisionJobs(userId);
    if (jobs.some((j) => j.state === "failed" && j.lastError === PROVISION_TAKEN)) return "taken";
    if (jobs.every((j) => j.state === "sent")) return "ready";
    if (performance.now() >= deadline) return "shortly";
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(0, deadline - performance.now()))));
  }
}

/** The refusal shown when a target made the name someone else's between accepting and completing. */
export function takenDownstreamError(): AppError {
  return new AppError(
    "USERNAME_TAKEN_DOWNSTREAM",
    "this username was taken on the account server meanwhile; nothing was kept — please register again under another name",
    { detail: "meanwhile" },
  );
}

/** An account's state on each target, as `users list` shows it. */
export function describeJob(state: ProvisionJobState): string {
  if (state.state === "sent") return "ready";
  if (state.state === "queued") return "provisioning";
  return `failed: ${state.lastError ?? "unknown"}`;
}
