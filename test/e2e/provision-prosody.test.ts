import { describe } from "node:test";
import { XmppTarget } from "../../src/accounts/xmpp.ts";
import { prosodyMissing, startProsody } from "../helpers/prosody.ts";
import { xmppLogsIn } from "../helpers/xmpp-login.ts";
import { provisionScenarios, sqliteSealed, sqliteStillHolds } from "./provision-scenarios.ts";

describe("provisioning to Prosody 0.12 through XEP-0133 (type xmpp)", { skip: prosodyMissing }, () => {
  provisionScenarios("prosody", async () => {
    const server = await startProsody();
    const options = {
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      jid: server.admin.jid,
      password: server.admin.password,
      tls: { ca: server.tls.ca },
      timeoutMs: 2000,
    };
    // Someone else's account, made the way an admin would (never `prosodyctl register`, which overwrites).
    const elsewhere = new XmppTarget(options);
    return {
      target: () => ({ type: "xmpp", ...options }),
      logsIn: (username, password) => xmppLogsIn(server, username, password),
      async makeElsewhere(username) {
        const answer = await elsewhere.create({ username, password: "someone else's password", passwordHash: "" });
        if (answer.outcome !== "made") throw new Error(`add-user: ${JSON.stringify(answer)}`);
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
