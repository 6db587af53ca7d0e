import { Client, DN, EqualityFilter, ResultCodeError } from "ldapts";
import {
  DEFAULT_TIMEOUT_MS,
  describeError,
  type AccountTarget,
  type Availability,
  type CreateOutcome,
  type NewAccount,
  type RemoveOutcome,
} from "./target.ts";

export interface LdapTargetOptions {
  name?: string;
  /** ldap://host:port or ldaps://host:port */
  url: string;
  /** An entry allowed to add and delete under baseDN. */
  bindDN: string;
  bindPassword: string;
  /** Accounts are added as uid=NAME,<baseDN>. */
  baseDN: string;
  /** Default: ["inetOrgPerson"] (which needs cn and sn). */
  objectClasses?: string[];
  /**
   * Further attributes; "{username}" in a value is replaced by the name.
   * Default: { cn: "{username}", sn: "{username}" }.
   */
  attributes?: Record<string, string | string[]>;
  /** Also store the address as `mail`. */
  includeMail?: boolean;
  timeoutMs?: number;
}

const ENTRY_ALREADY_EXISTS = 68;
const NO_SUCH_OBJECT = 32;

/**
 * Accounts as LDAP entries whose userPassword is gatehouse's own Argon2id hash ({ARGON2}, which
 * OpenLDAP's argon2 module verifies): the password itself never leaves gatehouse. One short
 * connection per operation, bound as bindDN, so a dropped connection never leaves an unbound one.
 */
export class LdapTarget implements AccountTarget {
  readonly type = "ldap";
  readonly name: string;
  readonly needsPassword = false;
  readonly needsMail: boolean;
  readonly #options: LdapTargetOptions;
  readonly #timeoutMs: number;

  constructor(options: LdapTargetOptions) {
    this.#options = options;
    this.needsMail = options.includeMail === true;
    this.name = options.name ?? `ldap ${options.baseDN}`;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async check(username: string): Promise<Availability> {
    try {
      return await this.#with(async (client) => ((await this.#find(client, username)) ? "taken" : "free"));
    } catch {
      return "unknown";
    }
  }

  async create(account: NewAccount): Promise<CreateOutcome> {
    const userPassword = `{ARGON2}${account.passwordHash}`;
    try {
      return await this.#with(async (client): Promise<CreateOutcome> => {
        try {
          await client.add(this.#dnOf(account.username), this.#entry(account, userPassword));
          return { outcome: "made" };
        } catch (err) {
          if (!(err instanceof ResultCodeError) || err.code !== ENTRY_ALREADY_EXISTS) throw err;
          // The hash is salted: the same value means an earlier attempt of this very job made the entry.
          const entry = await this.#find(client, account.username, ["userPassword"]);
          const stored = [entry?.["userPassword"] ?? []].flat().map(String);
          return stored.includes(userPassword) ? { outcome: "made" } : { outcome: "taken" };
        }
      });
    } catch (err) {
      return { outcome: "retry", reason: describeLdapError(err, [account.password, account.mail, this.#options.bindPassword]) };
    }
  }

  async remove(username: string): Promise<RemoveOutcome> {
    try {
      return await this.#with(async (client): Promise<RemoveOutcome> => {
        try {
          await client.del(this.#dnOf(username));
        } catch (err) {
          if (!(err instanceof ResultCodeError) || err.code !== NO_SUCH_OBJECT) throw err;
        }
        return { outcome: "made" };
      });
    } catch (err) {
      return { outcome: "retry", reason: describeLdapError(err, [this.#options.bindPassword]) };
    }
  }

  async close(): Promise<void> {}

  async #with<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const { url, bindDN, bindPassword } = this.#options;
    const client = new Client({
      url,
      timeout: this.#timeoutMs,
      connectTimeout: this.#timeoutMs,
    });
    try {
      await client.bind(bindDN, bindPassword);
      return await work(client);
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  async #find(client: Client, username: string, attributes: string[] = ["uid"]): Promise<Record<string, unknown> | undefined> {
    const { searchEntries } = await client.search(this.#options.baseDN, {
      scope: "sub",
      filter: new EqualityFilter({ attribute: "uid", value: username }),
      attributes,
      sizeLimit: 1,
    });
    return searchEntries[0];
  }

  #dnOf(username: string): string {
    return `${new DN({ uid: username }).toString()},${this.#options.baseDN}`;
  }

  #entry(account: NewAccount, userPassword: string): Record<string, string | string[]> {
    const fill = (value: string) => value.split("{username}").join(account.username);
    const template = this.#options.attributes ?? { cn: "{username}", sn: "{username}" };
    const entry: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(template)) entry[name] = Array.isArray(value) ? value.map(fill) : fill(value);
    entry["objectClass"] = this.#options.objectClasses ?? ["inetOrgPerson"];
    entry["uid"] = account.username;
    entry["userPassword"] = userPassword;
    if (this.#options.includeMail && account.mail) entry["mail"] = account.mail;
    return entry;
  }
}

/** ldapts' result errors say only "Code: 0x31"; their class name says what it means (InvalidCredentialsError). */
function describeLdapError(err: unknown, secrets: (string | undefined)[]): string {
  if (err instanceof ResultCodeError) return `${err.name} (LDAP result ${err.code})`;
  return describeError(err, secrets);
}
