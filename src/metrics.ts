import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { hashQueueStats } from "./domain/passwords.ts";
import type { InviteRecord, Store } from "./store/store.ts";

/**
 * The service's Prometheus metrics, on a registry of its own (no global state), so every
 * service in one process — tests start many — counts separately.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: "gatehouse_http_requests_total",
    help: "HTTP requests by route pattern, method and status",
    labelNames: ["route", "method", "status"] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: "gatehouse_http_request_duration_seconds",
    help: "HTTP request latency by route pattern",
    labelNames: ["route", "method"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly registrations = new Counter({
    name: "gatehouse_registrations_total",
    help: "Registration requests by outcome: accepted, or the refusal's error code",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly verifications = new Counter({
    name: "gatehouse_verifications_total",
    help: "Verification completions by outcome: created, awaiting_approval, already_active, unknown",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly resends = new Counter({
    name: "gatehouse_verification_resends_total",
    help: "Requests on the verify page to send the verification mail again, by outcome: sent, no_pending, mismatch, limit, mail_off, rate_limited",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly proofsOfWork = new Counter({
    name: "gatehouse_proof_of_work_total",
    help: "Proofs of work on the public forms by form and outcome: solved, or refused (missing, malformed, forged, expired, replayed)",
    labelNames: ["form", "outcome"] as const,
    registers: [this.registry],
  });

  readonly expirations = new Counter({
    name: "gatehouse_pending_expired_total",
    help: "Pending registrations removed because they were not verified in time",
    registers: [this.registry],
  });

  readonly approvals = new Counter({
    name: "gatehouse_approvals_total",
    help: "Registrations awaiting approval that ended, by outcome: approved, rejected (by a moderator's link), expired",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly invitesCreated = new Counter({
    name: "gatehouse_invites_created_total",
    help: "Invites created, by issuer kind (key, user, admin) and API key id",
    labelNames: ["issuer", "key"] as const,
    registers: [this.registry],
  });

  readonly invitesAccepted = new Counter({
    name: "gatehouse_invites_accepted_total",
    help: "Invites accepted (accounts created with them), by issuer kind and API key id",
    labelNames: ["issuer", "key"] as const,
    registers: [this.registry],
  });

  readonly logins = new Counter({
    name: "gatehouse_logins_total",
    help: "Login attempts by outcome: success, failed, limited, busy (Argon2 queue full)",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });

  readonly outbox = new Counter({
    name: "gatehouse_outbox_deliveries_total",
    help: "Outbox deliveries by kind (mail, event) and result (sent, retried, failed)",
    labelNames: ["kind", "result"] as const,
    registers: [this.registry],
  });

  readonly provisionJobs = new Counter({
    name: "gatehouse_provision_jobs_total",
    help: "Account server jobs (DESIGN §9) by target and outcome: made, taken, retry, failed",
    labelNames: ["target", "outcome"] as const,
    registers: [this.registry],
  });

  readonly clientErrors = new Counter({
    name: "gatehouse_client_errors_total",
    help: "Requests the client did not finish: timeout (a body too slow), aborted, parse (not HTTP)",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  /** `processMetrics: false` leaves out prom-client's process metrics, whose observers live as long as the process (a throwaway registry). */
  constructor(store: Pick<Store, "outboxDepth" | "provisionQueue" | "countAwaiting">, now: () => number = Date.now, { processMetrics = true } = {}) {
    new Gauge({
      name: "gatehouse_password_hash_queue",
      help: "Argon2 hashes and verifications queued or running; at its capacity new ones are answered 503",
      registers: [this.registry],
      collect() {
        this.set(hashQueueStats().depth);
      },
    });
    new Gauge({
      name: "gatehouse_outbox_depth",
      help: "Outbox items (mails and events) waiting to be delivered",
      registers: [this.registry],
      async collect() {
        this.set(await store.outboxDepth());
      },
    });
    new Gauge({
      name: "gatehouse_approvals_waiting",
      help: "Registrations waiting for a moderator's approval (DESIGN §11)",
      registers: [this.registry],
      async collect() {
        this.set(await store.countAwaiting(now()));
      },
    });
    // Both provision gauges are collected in one scrape (prom-client collects them together): one query serves both.
    let queue: ReturnType<typeof store.provisionQueue> | null = null;
    const provisionQueue = () => (queue ??= store.provisionQueue().finally(() => (queue = null)));
    new Gauge({
      name: "gatehouse_provision_queue_depth",
      help: "Account server jobs waiting to be done (queued, including those waiting for a retry)",
      registers: [this.registry],
      async collect() {
        this.set((await provisionQueue()).depth);
      },
    });
    new Gauge({
      name: "gatehouse_provision_oldest_job_age_seconds",
      help: "Age of the oldest account server job still waiting; 0 when none waits",
      registers: [this.registry],
      async collect() {
        const oldest = (await provisionQueue()).oldestCreatedAt;
        this.set(oldest === null ? 0 : Math.max(0, (now() - oldest) / 1000));
      },
    });
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "gatehouse_" });
  }

  // Labelled children, looked up once per label combination instead of on every request: the
  // combinations are few (route patterns, methods, statuses, outcome codes) and never removed.
  readonly #requestChildren = new Map<string, { count: Counter.Internal; duration: Histogram.Internal<string> }>();
  readonly #registrationChildren = new Map<string, Counter.Internal>();

  /** One answered request: counted by route pattern, method and status; timed by route and method. */
  countRequest(route: string, method: string, status: number, seconds: number): void {
    const key = `${status} ${method} ${route}`;
    let child = this.#requestChildren.get(key);
    if (!child) {
      child = { count: this.requests.labels(route, method, String(status)), duration: this.requestDuration.labels(route, method) };
      this.#requestChildren.set(key, child);
    }
    child.count.inc();
    child.duration.observe(seconds);
  }

  /** A registration request's outcome: accepted, or the refusal's error code. */
  countRegistration(outcome: string): void {
    let child = this.#registrationChildren.get(outcome);
    if (!child) {
      child = this.registrations.labels(outcome);
      this.#registrationChildren.set(outcome, child);
    }
    child.inc();
  }

  /** Invites are counted by who issued them; for API keys, by which key. */
  countInvite(counter: Counter<"issuer" | "key">, invite: Pick<InviteRecord, "issuerKind" | "issuerId">): void {
    counter.inc({ issuer: invite.issuerKind, key: invite.issuerKind === "key" ? invite.issuerId : "" });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
