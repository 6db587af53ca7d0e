import { signatureHeader } from "../domain/secrets.ts";
import {
  DEFAULT_TIMEOUT_MS,
  describeError,
  type AccountTarget,
  type Availability,
  type CreateOutcome,
  type NewAccount,
  type RemoveOutcome,
} from "./target.ts";

export interface HttpTargetOptions {
  name?: string;
  /** Receives POST (create) and DELETE (remove), each with a JSON body. */
  url: string;
  /** Signs every request as events are signed: x-gatehouse-signature: t=SECONDS,v1=HMAC-SHA256(secret, "t.body"). */
  secret: string;
  /** Asked before accepting: a POST of {username}; 200 free, 409 taken, anything else unknown. */
  checkUrl?: string;
  includePassword?: boolean;
  includeMail?: boolean;
  timeoutMs?: number;
  /** Milliseconds since the epoch, for the signature's timestamp. */
  now?: () => number;
}

/** Accounts at an operator's own endpoint: 2xx made, 409 taken, anything else retried. */
export class HttpTarget implements AccountTarget {
  readonly type = "http";
  readonly name: string;
  readonly needsPassword: boolean;
  readonly needsMail: boolean;
  readonly #options: HttpTargetOptions;
  readonly #timeoutMs: number;
  readonly #now: () => number;

  constructor(options: HttpTargetOptions) {
    this.#options = options;
    this.needsMail = options.includeMail === true;
    this.name = options.name ?? `http ${new URL(options.url).host}`;
    this.needsPassword = options.includePassword === true;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#now = options.now ?? Date.now;
  }

  async check(username: string): Promise<Availability> {
    if (!this.#options.checkUrl) return "unchecked";
    const answer = await this.#send("POST", this.#options.checkUrl, { username }, "check");
    if (answer === 200) return "free";
    if (answer === 409) return "taken";
    return "unknown";
  }

  async create(account: NewAccount): Promise<CreateOutcome> {
    const body: { username: string; mail?: string; password?: string } = { username: account.username };
    if (this.#options.includeMail && account.mail !== undefined) body.mail = account.mail;
    if (this.#options.includePassword) {
      if (account.password === undefined) return { outcome: "retry", reason: "no password to send" };
      body.password = account.password;
    }
    const answer = await this.#send("POST", this.#options.url, body, "create", [account.password, account.mail]);
    if (typeof answer === "string") return { outcome: "retry", reason: answer };
    if (answer >= 200 && answer < 300) return { outcome: "made" };
    if (answer === 409) return { outcome: "taken" };
    return { outcome: "retry", reason: `create answered ${answer}` };
  }

  async remove(username: string): Promise<RemoveOutcome> {
    const answer = await this.#send("DELETE", this.#options.url, { username }, "remove");
    if (typeof answer === "string") return { outcome: "retry", reason: answer };
    // 404: the receiver has no such account, which is what removing asks for.
    if ((answer >= 200 && answer < 300) || answer === 404) return { outcome: "made" };
    return { outcome: "retry", reason: `remove answered ${answer}` };
  }

  async close(): Promise<void> {}

  /** The status, or a scrubbed reason when there was no answer. */
  async #send(method: string, url: string, payload: object, what: string, secrets: (string | undefined)[] = []): Promise<number | string> {
    const body = JSON.stringify(payload);
    try {
      const response = await fetch(url, {
        method,
        headers: {
          "content-type": "application/json",
          "x-gatehouse-signature": signatureHeader(this.#options.secret, body, this.#now()),
        },
        body,
        // A redirect would resend the password elsewhere, or turn the request into a GET.
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      await response.body?.cancel().catch(() => {});
      return response.status;
    } catch (err) {
      return `${what}: ${describeError(err, [...secrets, this.#options.secret])}`;
    }
  }
}
