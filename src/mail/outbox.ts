import type { AppContext } from "../context.ts";
import { sign } from "../domain/secrets.ts";
import { isStoreUnavailable } from "../errors.ts";
import type { NewOutboxItem, OutboxItem } from "../store/store.ts";
import type { MailModels, MailName } from "../templates.ts";
import { isPermanentMailError } from "./transport.ts";

/** What a queued mail carries: the template, the address and the model, sealed at rest. */
export interface MailPayload<N extends MailName = MailName> {
  template: N;
  to: string;
  model: MailModels[N];
}

export interface EventPayload {
  type: "user-registered" | "invite-accepted";
  occurredAt: string;
  data: Record<string, unknown>;
}

export type OutboxDeps = Pick<AppContext, "store" | "mailer" | "clock" | "log" | "sealer" | "templates" | "config" | "metrics">;

export function queueMail<N extends MailName>(deps: Pick<AppContext, "sealer">, payload: MailPayload<N>, now: number): NewOutboxItem {
  return { kind: "mail", payload: deps.sealer.seal(JSON.stringify(payload)), createdAt: now };
}

export function queueEvent(deps: Pick<AppContext, "sealer">, event: EventPayload, now: number): NewOutboxItem {
  return { kind: "event", payload: deps.sealer.seal(JSON.stringify(event)), createdAt: now };
}

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

class PermanentFailure extends Error {}

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
      .catch((err: unknown) => this.deps.log[isStoreUnavailable(err) ? "warn" : "error"]({ err: String(err) }, "outbox pass failed"))
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
  }

  async #drain(): Promise<void> {
    // Checked before claiming, not after: a batch claimed and then dropped at shutdown would sit
    // out its lease (2 min) before anyone sent it.
    while (!this.#stopped) {
      const now = this.deps.clock.now();
      const items = await this.deps.store.claimOutbox(now, now + LEASE_MS, CLAIM_BATCH);
      if (items.length === 0) return;
      for (const item of items) await this.#deliver(item);
      // A short batch of mail took everything due (what is queued later kicks another pass). An
      // event sent may have been holding back its account's next one, so then claim again.
      if (items.length < CLAIM_BATCH && items.every((item) => item.kind === "mail")) return;
    }
  }

  async #deliver(item: OutboxItem): Promise<void> {
    const { store, clock, log } = this.deps;
    try {
      const payload = JSON.parse(this.deps.sealer.open(item.payload)) as MailPayload | EventPayload;
      if (item.kind === "mail") await this.#sendMail(payload as MailPayload, item);
      else await this.#sendEvent(payload as EventPayload, item);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const permanent = err instanceof PermanentFailure || isPermanentMailError(err);
      if (permanent || item.attempts >= MAX_ATTEMPTS) {
        log.error({ outboxId: item.id, kind: item.kind, attempts: item.attempts, reason }, "outbox item failed for good");
        await store.markOutboxFailed(item.id, reason, clock.now());
        this.deps.metrics.outbox.inc({ kind: item.kind, result: "failed" });
      } else {
        const delay = backoffMs(item.attempts);
        log.warn({ outboxId: item.id, kind: item.kind, attempts: item.attempts, retryInMs: delay, reason }, "outbox send failed, will retry");
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

  async #sendMail(payload: MailPayload, item: OutboxItem): Promise<void> {
    const rendered = this.deps.templates.mail(payload.template, payload.model);
    const mailer = this.deps.mailer;
    const result = await mailer.send({ to: payload.to, ...rendered });
    // Only the local-directory transport (the development default) logs the link: there the
    // operator reads the mail from disk anyway, and the design asks for the link in the log.
    if (mailer.isLocalDirectory) {
      this.deps.log.info({ outboxId: item.id, file: result.file, link: payload.model.link }, "verification mail written");
    } else {
      this.deps.log.info({ outboxId: item.id, transport: mailer.description }, "mail sent");
    }
  }

  async #sendEvent(event: EventPayload, item: OutboxItem): Promise<void> {
    const webhook = this.deps.config.events?.webhook;
    // Queued while a webhook was configured; calling it sent would lose it without a trace.
    if (!webhook) throw new PermanentFailure("events.webhook is no longer configured");
    const body = JSON.stringify(event);
    const timestamp = Math.floor(this.deps.clock.now() / 1000).toString();
    const response = await fetch(webhook.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gatehouse-event": event.type,
        "x-gatehouse-delivery": String(item.id),
        // Signed over "timestamp.body" so a receiver can refuse stale replays.
        "x-gatehouse-signature": `t=${timestamp},v1=${sign(webhook.secret, `${timestamp}.${body}`)}`,
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
