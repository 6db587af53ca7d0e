import {
  DEFAULT_TIMEOUT_MS,
  describeError,
  scrubReason,
  type AccountTarget,
  type Availability,
  type CreateOutcome,
  type NewAccount,
  type RemoveOutcome,
} from "./target.ts";

export interface EjabberdTargetOptions {
  name?: string;
  /** Where mod_http_api is mounted, e.g. http://127.0.0.1:5280/api */
  url: string;
  /** The virtual host the accounts live on. */
  host: string;
  /** None when an api_permissions rule lets this address call the commands. */
  auth?: { type: "basic"; user: string; password: string } | { type: "bearer"; token: string };
  timeoutMs?: number;
}

/** ejabberd's "user already registered" error code (mod_http_api answers it with HTTP 409). */
const ALREADY_REGISTERED = 10090;

/** Accounts through ejabberd's HTTP API: register, check_account (mod_admin_extra), unregister. */
export class EjabberdTarget implements AccountTarget {
  readonly type = "ejabberd";
  readonly name: string;
  readonly needsPassword = true;
  readonly needsMail = false;
  readonly #options: EjabberdTargetOptions;
  readonly #base: string;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: EjabberdTargetOptions) {
    this.#options = options;
    this.name = options.name ?? `ejabberd ${options.host}`;
    this.#base = options.url.replace(/\/+$/, "");
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const auth = options.auth;
    if (auth?.type === "basic") {
      this.#authorization = `Basic ${Buffer.from(`${auth.user}:${auth.password}`, "utf8").toString("base64")}`;
    } else if (auth?.type === "bearer") {
      this.#authorization = `Bearer ${auth.token}`;
    }
  }

  async check(username: string): Promise<Availability> {
    const answer = await this.#call("check_account", { user: username, host: this.#options.host });
    if (!("status" in answer) || answer.status !== 200) return "unknown";
    // check_account answers 200 either way: 0 means the account exists, 1 that it does not.
    if (answer.body === 0) return "taken";
    if (answer.body === 1) return "free";
    return "unknown";
  }

  async create(account: NewAccount): Promise<CreateOutcome> {
    if (account.password === undefined) return { outcome: "retry", reason: "no password to register with" };
    const answer = await this.#call(
      "register",
      { user: account.username, host: this.#options.host, password: account.password },
      account.password,
    );
    if ("reason" in answer) return { outcome: "retry", reason: answer.reason };
    if (answer.status === 200) return { outcome: "made" };
    if (answer.status === 409 && codeOf(answer.body) === ALREADY_REGISTERED) {
      return (await this.#hasPassword(account.username, account.password)) ? { outcome: "made" } : { outcome: "taken" };
    }
    return { outcome: "retry", reason: describeAnswer(answer, account.password) };
  }

  /**
   * Whether the existing account has this password: then an earlier attempt made it. Needs
   * check_password in api_permissions; without it the name counts as taken.
   */
  async #hasPassword(username: string, password: string): Promise<boolean> {
    const answer = await this.#call("check_password", { user: username, host: this.#options.host, password }, password);
    return "status" in answer && answer.status === 200 && answer.body === 0;
  }

  async remove(username: string): Promise<RemoveOutcome> {
    // unregister of a name ejabberd does not have answers 200 too, so a repeated job is harmless.
    const answer = await this.#call("unregister", { user: username, host: this.#options.host });
    if ("reason" in answer) return { outcome: "retry", reason: answer.reason };
    if (answer.status === 200) return { outcome: "made" };
    return { outcome: "retry", reason: describeAnswer(answer) };
  }

  async close(): Promise<void> {}

  async #call(
    command: string,
    args: Record<string, string>,
    secret?: string,
  ): Promise<{ status: number; body: unknown } | { reason: string }> {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.#authorization) headers["authorization"] = this.#authorization;
    try {
      const response = await fetch(`${this.#base}/${command}`, {
        method: "POST",
        headers,
        body: JSON.stringify(args),
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // ejabberd answers some errors as plain text
      }
      return { status: response.status, body };
    } catch (err) {
      return { reason: `${command}: ${describeError(err, [secret, this.#authorization])}` };
    }
  }
}

function codeOf(body: unknown): unknown {
  return body && typeof body === "object" ? (body as { code?: unknown }).code : undefined;
}

function describeAnswer(answer: { status: number; body: unknown }, secret?: string): string {
  const body = answer.body;
  const message = body && typeof body === "object" ? (body as { message?: unknown }).message : body;
  return scrubReason(`ejabberd answered ${answer.status}${message ? `: ${String(message)}` : ""}`, [secret]);
}
