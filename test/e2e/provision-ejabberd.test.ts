import { describe } from "node:test";
import { ejabberdMissing, startEjabberd } from "../helpers/ejabberd.ts";
import { xmppLogsIn } from "../helpers/xmpp-login.ts";
import { provisionScenarios, sqliteSealed, sqliteStillHolds } from "./provision-scenarios.ts";

describe("provisioning to ejabberd 23.01 over its HTTP API", { skip: ejabberdMissing }, () => {
  provisionScenarios("ejabberd", async () => {
    const server = await startEjabberd();
    return {
      target: () => ({ type: "ejabberd", url: server.apiUrl, host: server.domain, timeoutMs: 2000 }),
      logsIn: (username, password) => xmppLogsIn(server, username, password),
      async makeElsewhere(username) {
        const res = await fetch(`${server.apiUrl}/register`, {
          method: "POST",
          body: JSON.stringify({ user: username, host: server.domain, password: "someone else's password" }),
        });
        if (res.status !== 200) throw new Error(`register answered ${res.status}: ${await res.text()}`);
      },
      stop: () => server.stop(),
      start: () => server.start(),
      close: () => server.close(),
    };
  }, { sealedNow: sqliteSealed, stillStored: sqliteStillHolds });
});
