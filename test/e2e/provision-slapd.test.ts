import { describe } from "node:test";
import { LdapTarget } from "../../src/accounts/ldap.ts";
import { hashPassword } from "../../src/domain/passwords.ts";
import { bindsAs, slapdMissing, startSlapd } from "../helpers/slapd.ts";
import { provisionScenarios, sqliteSealed, sqliteStillHolds } from "./provision-scenarios.ts";

describe("provisioning to OpenLDAP slapd 2.5 with {ARGON2} hashes", { skip: slapdMissing }, () => {
  provisionScenarios("slapd", async () => {
    const server = await startSlapd();
    const options = { url: server.url, bindDN: server.admin.dn, bindPassword: server.admin.password, baseDN: server.baseDN, timeoutMs: 2000 };
    const elsewhere = new LdapTarget(options);
    return {
      target: () => ({ type: "ldap", ...options }),
      logsIn: async (username, password) => bindsAs(server, username, password),
      async makeElsewhere(username) {
        const answer = await elsewhere.create({ username, passwordHash: await hashPassword("someone else's password") });
        if (answer.outcome !== "made") throw new Error(`add: ${JSON.stringify(answer)}`);
      },
      stop: () => server.stop(),
      start: () => server.start(),
      async close() {
        await elsewhere.close();
        await server.close();
      },
    };
  }, { sealedNow: sqliteSealed, stillStored: sqliteStillHolds });
});
