import { randomBytes } from "node:crypto";
import { xml } from "@xmpp/client-core";
import XMPPError from "@xmpp/error";
import type { Element } from "@xmpp/xml";
import {
  DEFAULT_TIMEOUT_MS,
  describeError,
  scrubReason,
  withTimeout,
  type AccountTarget,
  type Availability,
  type CreateOutcome,
  type NewAccount,
  type RemoveOutcome,
} from "./target.ts";
import { openXmppSession, type XmppSession, type XmppTlsOptions } from "./xmpp-session.ts";

export interface XmppTargetOptions {
  name?: string;
  /** xmpp://host:port of the server's client port. */
  service: string;
  /** The domain the accounts are made on. */
  domain: string;
  /** An admin of that domain (Prosody: listed in `admins`; ejabberd: in the acl mod_configure allows). */
  jid: string;
  password: string;
  tls?: XmppTlsOptions;
  timeoutMs?: number;
}

const NS_COMMANDS = "http://jabber.org/protocol/commands";
const NS_DATA = "jabber:x:data";
const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
const ADMIN = "http://jabber.org/protocol/admin";
const ADD_USER = `${ADMIN}#add-user`;
const DELETE_USER = `${ADMIN}#delete-user`;
const USER_STATS = `${ADMIN}#user-stats`;

/** How a completed ad-hoc command ended: its notes, or the stanza error it was refused with. */
interface CommandAnswer {
  errorCondition?: string;
  notes: { type: string; text: string }[];
}

/**
 * Accounts through XEP-0133 Service Administration ("add-user", "delete-user"), sent by an admin
 * over one client stream that stays open and is opened again when it dropped. Prosody 0.12
 * (mod_admin_adhoc), ejabberd (mod_configure) and other servers; they answer a taken name
 * differently, and both ways count as taken.
 */
export class XmppTarget implements AccountTarget {
  readonly type = "xmpp";
  readonly name: string;
  readonly needsPassword = true;
  readonly needsMail = false;
  readonly #options: XmppTargetOptions;
  readonly #timeoutMs: number;
  #live: XmppSession | undefined;
  #opening: Promise<XmppSession> | undefined;
  #statsTrusted: Promise<boolean> | undefined;
  #closed = false;

  constructor(options: XmppTargetOptions) {
    this.#options = options;
    this.name = options.name ?? `xmpp ${options.domain}`;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * "user-stats" where it tells a free name apart: Prosody answers "User does not exist", ejabberd
   * answers empty statistics for any name, so it is used only if a made-up name is said not to exist.
   */
  async check(username: string): Promise<Availability> {
    try {
      return await withTimeout(
        (async () => {
          const session = await this.#session();
          if (!(await this.#statsTell(session))) return "unchecked" as const;
          const exists = await this.#exists(session, username);
          return exists === undefined ? ("unknown" as const) : exists ? ("taken" as const) : ("free" as const);
        })(),
        this.#timeoutMs,
        "user-stats",
      );
    } catch {
      return "unknown";
    }
  }

  async create(account: NewAccount): Promise<CreateOutcome> {
    const password = account.password;
    if (password === undefined) return { outcome: "retry", reason: "no password to add the user with" };
    try {
      const answer = await withTimeout(
        (async () => {
          const session = await this.#session();
          return this.#run(session, ADD_USER, [
            ["accountjid", this.#jidOf(account.username)],
            ["password", password],
            ["password-verify", password],
          ]);
        })(),
        this.#timeoutMs,
        "add-user",
      );
      const error = answer.notes.find((n) => n.type === "error");
      // ejabberd refuses a taken name with <conflict/>; Prosody 0.12 answers a *result* whose note is an error.
      const taken = answer.errorCondition === "conflict" || (error !== undefined && /already exists/i.test(error.text));
      if (taken) return (await this.#logsIn(account.username, password)) ? { outcome: "made" } : { outcome: "taken" };
      if (answer.errorCondition) return { outcome: "retry", reason: this.#reason(`add-user refused: ${answer.errorCondition}`, password) };
      if (error) return { outcome: "retry", reason: this.#reason(`add-user failed: ${error.text}`, password) };
      return { outcome: "made" };
    } catch (err) {
      return { outcome: "retry", reason: describeError(err, [password, this.#options.password]) };
    }
  }

  async remove(username: string): Promise<RemoveOutcome> {
    try {
      return await withTimeout(
        (async (): Promise<RemoveOutcome> => {
          const session = await this.#session();
          const answer = await this.#run(session, DELETE_USER, [["accountjids", this.#jidOf(username)]]);
          // ejabberd refuses a name it does not have with item-not-found: gone either way.
          if (answer.errorCondition === "item-not-found") return { outcome: "made" };
          if (answer.errorCondition) return { outcome: "retry", reason: this.#reason(`delete-user refused: ${answer.errorCondition}`) };
          const error = answer.notes.find((n) => n.type === "error");
          if (error) return { outcome: "retry", reason: this.#reason(`delete-user failed: ${error.text}`) };
          // Prosody answers the same info note whether it deleted the account, found none, or failed
          // to delete it: where user-stats can tell, it says whether the account is really gone.
          if (!(await this.#statsTell(session))) return { outcome: "made" };
          const exists = await this.#exists(session, username);
          if (exists === false) return { outcome: "made" };
          return { outcome: "retry", reason: exists ? "delete-user left the account in place" : "could not confirm the deletion" };
        })(),
        this.#timeoutMs,
        "delete-user",
      );
    } catch (err) {
      return { outcome: "retry", reason: describeError(err, [this.#options.password]) };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const opening = this.#opening;
    const live = this.#live;
    this.#live = undefined;
    await live?.stop();
    await opening?.then((s) => s.stop(), () => {});
  }

  /** The open admin stream, or a new one when there is none or it dropped; callers share one attempt. */
  async #session(): Promise<XmppSession> {
    if (this.#closed) throw new Error("target closed");
    if (this.#live?.online) return this.#live;
    this.#opening ??= (async () => {
      try {
        const session = await openXmppSession({ ...this.#login(), timeoutMs: this.#timeoutMs });
        if (this.#closed) {
          await session.stop();
          throw new Error("target closed");
        }
        await this.#live?.stop();
        this.#live = session;
        this.#statsTrusted = undefined;
        return session;
      } finally {
        this.#opening = undefined;
      }
    })();
    return this.#opening;
  }

  #login(): { service: string; domain: string; username: string; password: string; tls?: XmppTlsOptions } {
    const { service, jid, password, tls } = this.#options;
    const at = jid.indexOf("@");
    const username = at > 0 ? jid.slice(0, at) : jid;
    const domain = at > 0 ? jid.slice(at + 1).split("/")[0]! : this.#options.domain;
    return { service, domain, username, password, ...(tls ? { tls } : {}) };
  }

  /** Whether the account exists with this password: a retried add-user after one that made it. */
  async #logsIn(username: string, password: string): Promise<boolean> {
    try {
      const session = await openXmppSession({
        ...this.#login(),
        domain: this.#options.domain,
        username,
        password,
        timeoutMs: this.#timeoutMs,
      });
      await session.stop();
      return true;
    } catch {
      return false;
    }
  }

  /** Whether user-stats tells a free name apart on this server: asked once per stream, about a made-up name. */
  #statsTell(session: XmppSession): Promise<boolean> {
    this.#statsTrusted ??= (async () => {
      const items = await session.iq.request(
        xml("iq", { type: "get", to: this.#options.domain }, xml("query", { xmlns: NS_DISCO_ITEMS, node: NS_COMMANDS })),
        this.#timeoutMs,
      );
      const offered = (items.getChild("query", NS_DISCO_ITEMS)?.getChildren("item") ?? []).some((i) => i.attrs["node"] === USER_STATS);
      return offered && (await this.#exists(session, `gatehouse-probe-${randomBytes(8).toString("hex")}`)) === false;
    })().catch(() => {
      this.#statsTrusted = undefined;
      return false;
    });
    return this.#statsTrusted;
  }

  /** user-stats' verdict: false for a "does not exist" note, true for statistics, undefined otherwise. */
  async #exists(session: XmppSession, username: string): Promise<boolean | undefined> {
    const answer = await this.#run(session, USER_STATS, [["accountjid", this.#jidOf(username)]]);
    if (answer.errorCondition) return undefined;
    const error = answer.notes.find((n) => n.type === "error");
    if (!error) return true;
    return /does not exist|not found|no such user/i.test(error.text) ? false : undefined;
  }

  /** Executes an ad-hoc command, then submits its form with these fields (values are escaped as XML text). */
  async #run(session: XmppSession, node: string, fields: [string, string][]): Promise<CommandAnswer> {
    const to = this.#options.domain;
    try {
      const first = await session.iq.request(
        xml("iq", { type: "set", to }, xml("command", { xmlns: NS_COMMANDS, node, action: "execute" })),
        this.#timeoutMs,
      );
      const started = first.getChild("command", NS_COMMANDS);
      if (started?.attrs["status"] === "completed") return readAnswer(started);
      const sessionid = started?.attrs["sessionid"];
      const form = xml(
        "x",
        { xmlns: NS_DATA, type: "submit" },
        xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, ADMIN)),
        ...fields.map(([name, value]) => xml("field", { var: name }, xml("value", {}, value))),
      );
      const reply = await session.iq.request(
        xml("iq", { type: "set", to }, xml("command", { xmlns: NS_COMMANDS, node, sessionid, action: "complete" }, form)),
        this.#timeoutMs,
      );
      return readAnswer(reply.getChild("command", NS_COMMANDS));
    } catch (err) {
      if (err instanceof XMPPError && err.element) {
        return { errorCondition: err.condition, notes: [] };
      }
      throw err;
    }
  }

  #jidOf(username: string): string {
    return `${username}@${this.#options.domain}`;
  }

  #reason(text: string, password?: string): string {
    return scrubReason(text, [password, this.#options.password]);
  }
}

function readAnswer(command: Element | undefined): CommandAnswer {
  return { notes: (command?.getChildren("note") ?? []).map((n) => ({ type: n.attrs["type"] ?? "info", text: n.text() })) };
}
