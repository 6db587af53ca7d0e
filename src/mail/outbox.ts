import type { AppContext } from "../context.ts";
import type { EventPayload, MailPayload } from "../domain/outbox-items.ts";
import { removeJobs, type ProvisionPayload } from "../domain/provisioning.ts";
import { signatureHeader } from "../domain/secrets.ts";
import { isStoreUnavailable } from "../errors.ts";
import { scrubRemoteText } from "../scrub.ts";
import { PROVISION_TAKEN, type OutboxItem } from "../store/store.ts";
import { isPermanentMailError } from "./transport.ts";

export type OutboxDeps = Pick<AppContext, "store" | "mailer" | "clock" | "log" | "sealer" | "templates" | "config" | "metrics" | "targets" | "notifyOutbox">;

/** Retry delays: 2 s doubling to 10 min; after MAX_ATTEMPTS a message is marked failed and left for an admin. */
export const MAX_ATTEMPTS = 25;
export function backoffMs(attempts: number): number {
  return Math.min(2_000 * 2 ** Math.max(attempts - 1, 0), 600_000);
}

const LEASE_MS = 120_000;
const POLL_MS = 1_000;
const CLAIM_BATCH = 20;
/**
 * How long a new item waits for others to join it: under a flood of sign-ups one pass then claims
 * and sends a batch, instead of a claim per registration competing with the hashing threads.
 */
const GATHER_MS = 50;
const PURGE_MS = 1_000;

class PermanentFailure extends Error {}

/** A create job whose target says the name is someone else's: the account is removed everywhere else. */
class NameTakenDownstream extends Error {}

/**
 * Sends what the outbox holds. Rows are leased, not locked, so a sender that dies mid-send
 * leaves rows that another sender picks up once the lease runs out.
 */
export class OutboxSender {
  #timer: NodeJS.Timeout | null = null;
  #gathering: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #purging: NodeJS.Timeout | null = null;
  #lastPurge = 0;

  constructor(private readonly deps: OutboxDeps, private readonly pollMs = POLL_MS) {}

  start(): void {
    this.#stopped = false;
    this.#timer = setInterval(() => this.kick(), this.pollMs);
    this.#timer.unref();
    this.kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#gathering) clearTimeout(this.#gathering);
    this.#timer = null;
    this.#gathering = null;
    await this.#running;
    await this.#purgeNow();
  }

  /** Runs a pass shortly: new work, with whatever else arrives in the next few milliseconds. */
  soon(): void {
    if (this.#stopped || this.#gathering) return;
    this.#gathering = setTimeout(() => {
      this.#gathering = null;
      this.kick();
    }, GATHER_MS);
  }

  /** Runs a pass now, or right after the one in progress. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#drain()
      // A database outage is retried by the next poll.
      .catch((err: unknown) => this.deps.log[isStoreUnavailable(err) ? "warn" : "error"]({ err: scrubRemoteText(String(err)) }, "outbox pass failed"))
      .finally(() => {
        this.#running = null;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** Sends every due item; resolves when none is left. For tests and the CLI. */
  async drain(): Promise<void> {
    await this.#running;
    await this.#drain();
    await this.#purgeNow();
  }

  async #drain(): Promise<void> {
    // Checked before claiming, not after: a batch claimed and then dropped at shutdown would sit
    // out its lease (2 min) before anyone sent it.
    try {
      while (!this.#stopped) {
        const now = this.deps.clock.now();
        const items = await this.deps.store.claimOutbox(now, now + LEASE_MS, CLAIM_BATCH);
        if (items.length === 0) return;
        for (const item of items) await this.#deliver(item);
        // A short batch of mail took everything due (what is queued later kicks another pass). An
        // event sent may have been holding back its account's next one, so then claim again.
        if (items.length < CLAIM_BATCH && items.every((item) => item.kind === "mail")) return;
      }
    } finally {
      this.#purgeSoon();
    }
  }

  /**
   * What was sent (or voided meanwhile) leaves the store's files, at most once a second: on SQLite
   * that is a WAL checkpoint with its fsyncs (~7–13 ms on the event loop), too much after every pass
   * under a flood of sign-ups, and a second is all an erased payload may outlive its sending.
   */
  #purgeSoon(): void {
    if (this.#purging || this.#stopped) return;
    const wait = this.#lastPurge + PURGE_MS - performance.now();
    this.#purging = setTimeout(() => {
      this.#purging = null;
      void this.#purgeNow();
    }, Math.max(0, wait));
    this.#purging.unref();
  }

  async #purgeNow(): Promise<void> {
    if (this.#purging) clearTimeout(this.#purging);
    this.#purging = null;
    this.#lastPurge = performance.now();
    try {
      await this.deps.store.purgeErased();
    } catch (err) {
      this.deps.log.error({ err: String(err) }, "erasing sent payloads from the store's files failed; will retry");
      this.#purgeSoon();
    }
  }

  async #deliver(item: OutboxItem): Promise<void> {
    const { store, clock, log } = this.deps;
    let secrets: string[] = [];
    try {
      const payload = JSON.parse(this.deps.sealer.open(item.payload)) as MailPayload | EventPayload | ProvisionPayload;
      if (item.kind === "mail") {
        secrets = [(payload as MailPayload).to];
        await this.#sendMail(payload as MailPayload, item);
      } else if (item.kind === "provision") {
        const job = payload as ProvisionPayload;
        secrets = job.op === "create" ? [job.password, job.mail, job.passwordHash].filter((s): s is string => s !== undefined) : [];
        await this.#provision(job, item);
      } else {
        await this.#sendEvent(payload as EventPayload, item);
      }
    } catch (err) {
      if (err instanceof NameTakenDownstream) {
        await this.#nameTaken(item, err.message);
        return;
      }
      // The SMTP server's, the receiver's or the account server's words, logged and kept in
      // last_error: addresses and passwords out.
      const reason = scrubRemoteText(err instanceof Error ? err.message : String(err), secrets);
      const permanent = err instanceof PermanentFailure || isPermanentMailError(err);
      if (item.kind === "provision") this.deps.metrics.provisionJobs.inc({ target: item.target ?? "", outcome: permanent || item.attempts >= MAX_ATTEMPTS ? "failed" : "retry" });
      if (permanent || item.attempts >= MAX_ATTEMPTS) {
        log.error({ outboxId: item.id, kind: item.kind, target: item.target ?? undefined, attempts: item.attempts, reason }, "outbox item failed for good");
        await store.markOutboxFailed(item.id, reason, clock.now());
        this.deps.metrics.outbox.inc({ kind: item.kind, result: "failed" });
      } else {
        const delay = backoffMs(item.attempts);
        log.warn({ outboxId: item.id, kind: item.kind, target: item.target ?? undefined, attempts: item.attempts, retryInMs: delay, reason }, "outbox send failed, will retry");
        await store.markOutboxRetry(item.id, clock.now() + delay, reason);
        this.deps.metrics.outbox.inc({ kind: item.kind, result: "retried" });
      }
      return;
    }
    // Not a failed send: a database outage here ends the pass, and the item, still leased, is
    // sent again once the lease runs out (at least once, never lost).
    await store.markOutboxSent(item.id, clock.now());
    this.deps.metrics.outbox.inc({ kind: item.kind, result: "sent" });
  }

  /** Runs a provision job on its target: made is sent, taken removes the account, anything else is retried. */
  async #provision(job: ProvisionPayload, item: OutboxItem): Promise<void> {
    const target = item.target === null ? undefined : this.deps.targets.get(item.target);
    // Queued for a target the config no longer has: failed with that reason, for `users list`.
    if (!target) throw new PermanentFailure(`target ${JSON.stringify(item.target)} is no longer configured`);
    const answer = job.op === "create"
      ? await target.create({ username: job.username, password: job.password, passwordHash: job.passwordHash, mail: job.mail })
      : await target.remove(job.username);
    if (answer.outcome === "taken") throw new NameTakenDownstream(job.username);
    if (answer.outcome === "retry") throw new Error(answer.reason);
    this.deps.metrics.provisionJobs.inc({ target: target.name, outcome: "made" });
    this.deps.log.info({ outboxId: item.id, target: target.name, op: job.op, outcome: "made", attempts: item.attempts }, "account server job done");
  }

  /**
   * A target made the name someone else's between accepting and completing: the job fails with
   * PROVISION_TAKEN (the waiting page shows 409), and the account goes: its name and mail are free
   * in gatehouse again, and every other target removes what it may already have made.
   */
  async #nameTaken(item: OutboxItem, username: string): Promise<void> {
    const { store, clock, log } = this.deps;
    const now = clock.now();
    this.deps.metrics.provisionJobs.inc({ target: item.target ?? "", outcome: "taken" });
    log.warn({ outboxId: item.id, target: item.target, outcome: "taken", userId: item.userId }, "account server says the name is taken; removing the account");
    // The account goes first: the waiting page answers 409 as soon as it sees PROVISION_TAKEN,
    // and by then nothing of the account may be left (removing it voids this job for a moment,
    // which the page reads as "not yet"; the line after sets the outcome it waits for).
    await store.removeAccount(username, now, () => removeJobs(this.deps, username, now, item.target ?? undefined), { restoreInvite: true });
    await store.markOutboxFailed(item.id, PROVISION_TAKEN, now);
    this.deps.notifyOutbox();
  }

  async #sendMail(payload: MailPayload, item: OutboxItem): Promise<void> {
    const rendered = this.deps.templates.mail(payload.template, payload.model, payload.lang);
    const mailer = this.deps.mailer;
    const result = await mailer.send({ to: payload.to, ...rendered });
    // Only the local-directory transport (the development default) logs the link: there the
    // operator reads the mail from disk anyway, and the design asks for the link in the log.
    // A moderator's links are not logged: whoever reads the log could decide with them.
    if (mailer.isLocalDirectory && payload.template === "verify") {
      this.deps.log.info({ outboxId: item.id, file: result.file, link: (payload as MailPayload<"verify">).model.link }, "verification mail written");
    } else if (mailer.isLocalDirectory) {
      this.deps.log.info({ outboxId: item.id, file: result.file, template: payload.template }, "mail written");
    } else {
      this.deps.log.info({ outboxId: item.id, transport: mailer.description }, "mail sent");
    }
  }

  async #sendEvent(event: EventPayload, item: OutboxItem): Promise<void> {
    const webhook = this.deps.config.events?.webhook;
    // Queued while a webhook was configured; calling it sent would lose it without a trace.
    if (!webhook) throw new PermanentFailure("events.webhook is no longer configured");
    const body = JSON.stringify(event);
    const response = await fetch(webhook.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gatehouse-event": event.type,
        "x-gatehouse-delivery": String(item.id),
        "x-gatehouse-signature": signatureHeader(webhook.secret, body, this.deps.clock.now()),
      },
      body,
      // A redirect would turn the POST into a GET elsewhere and count as delivered; it is retried instead.
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
    // Only the status matters; dropping the body frees the connection now rather than at GC.
    await response.body?.cancel().catch(() => {});
    if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
      throw new PermanentFailure(`webhook answered ${response.status}`);
    }
    if (!response.ok) throw new Error(`webhook answered ${response.status}`);
    this.deps.log.info({ outboxId: item.id, event: event.type, attempts: item.attempts }, "event delivered");
  }
}
