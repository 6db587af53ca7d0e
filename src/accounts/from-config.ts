import { isDeepStrictEqual } from "node:util";
import { provisionTargetName, type ProvisionTargetConfig } from "../config.ts";
import { EjabberdTarget } from "./ejabberd.ts";
import { HttpTarget } from "./http.ts";
import { LdapTarget } from "./ldap.ts";
import type { AccountTarget } from "./target.ts";
import { XmppTarget } from "./xmpp.ts";

/** One configured target's client; nothing connects until it is first used. */
export function createTarget(config: ProvisionTargetConfig): AccountTarget {
  const name = provisionTargetName(config);
  switch (config.type) {
    case "ejabberd":
      return new EjabberdTarget({ ...config, name });
    case "xmpp":
      return new XmppTarget({ ...config, name });
    case "ldap":
      return new LdapTarget({ ...config, name });
    case "http":
      return new HttpTarget({ ...config, name });
  }
}

/**
 * The targets of accounts.provision, as the service holds them across reloads: a reload keeps the
 * client of every target whose options did not change (an XMPP target keeps its one connection) and
 * closes the clients of targets that changed or went.
 */
export class ProvisionTargets {
  #entries: { config: ProvisionTargetConfig; target: AccountTarget }[] = [];

  constructor(configs: readonly ProvisionTargetConfig[] = []) {
    this.update(configs);
  }

  list(): readonly AccountTarget[] {
    return this.#entries.map((entry) => entry.target);
  }

  get(name: string): AccountTarget | undefined {
    return this.#entries.find((entry) => entry.target.name === name)?.target;
  }

  /** Puts `configs` in force; closes what is no longer used (in the background: a close never fails a reload). */
  update(configs: readonly ProvisionTargetConfig[]): void {
    const old = this.#entries;
    this.#entries = configs.map((config) => old.find((entry) => isDeepStrictEqual(entry.config, config)) ?? { config, target: createTarget(config) });
    for (const entry of old) {
      if (!this.#entries.includes(entry)) void entry.target.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    const entries = this.#entries;
    this.#entries = [];
    await Promise.all(entries.map((entry) => entry.target.close().catch(() => {})));
  }
}
