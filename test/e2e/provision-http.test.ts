import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe } from "node:test";
import pg from "pg";
import { verifySignature } from "../helpers/signature.ts";
import { provisionScenarios } from "./provision-scenarios.ts";

const PG = process.env["GATEHOUSE_TEST_PG"];
const SECRET = "receiver-secret-0123456789";

/**
 * An operator's own account endpoint: signed POST creates (409 for a name someone else holds, 2xx
 * again for the same account, so a retried create is harmless), DELETE removes, /check answers
 * 409 for a taken name. "Logging in" is asking it whether the password is the account's.
 */
async function startReceiver() {
  const accounts = new Map<string, string>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (verifySignature(SECRET, req.headers["x-gatehouse-signature"] as string | undefined, body, Date.now()) !== "ok") {
          res.writeHead(401).end();
          return;
        }
        const { username, password } = JSON.parse(body) as { username: string; password?: string };
        if (req.url === "/check") res.writeHead(accounts.has(username) ? 409 : 200).end();
        else if (req.method === "DELETE") res.writeHead(accounts.delete(username) ? 204 : 404).end();
        else if (accounts.has(username) && accounts.get(username) !== password) res.writeHead(409).end();
        else {
          accounts.set(username, password ?? "");
          res.writeHead(201).end();
        }
      });
    });
    await new Promise<void>((resolve) => server!.listen(port, "127.0.0.1", () => resolve()));
    port = (server!.address() as AddressInfo).port;
  };
  await listen();
  return {
    accounts,
    url: () => `http://127.0.0.1:${port}`,
    listen,
    async stop() {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => server?.close(() => resolve()));
    },
  };
}

describe("provisioning to an HTTP endpoint, with PostgreSQL as the store", { skip: PG ? false : "GATEHOUSE_TEST_PG is not set" }, () => {
  const schema = `gh_prov_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Pool({ connectionString: PG, max: 2 });
  const storage = PG ? `${PG}${PG.includes("?") ? "&" : "?"}options=${encodeURIComponent(`-c search_path=${schema}`)}` : "";
  before(async () => {
    await admin.query(`CREATE SCHEMA ${schema}`);
  });
  after(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });

  provisionScenarios("http", async () => {
    const receiver = await startReceiver();
    return {
      target: () => ({ type: "http", url: `${receiver.url()}/accounts`, checkUrl: `${receiver.url()}/check`, secret: SECRET, includePassword: true, includeMail: true, timeoutMs: 2000 }),
      logsIn: async (username, password) => receiver.accounts.get(username) === password,
      async makeElsewhere(username) {
        receiver.accounts.set(username, "someone else's password");
      },
      stop: () => receiver.stop(),
      start: () => receiver.listen(),
      close: () => receiver.stop(),
    };
  }, {
    invite: false,
    overrides: { storage },
    async sealedNow() {
      const jobs = await admin.query<{ v: string }>(`SELECT payload AS v FROM ${schema}.outbox WHERE kind = 'provision' AND payload IS NOT NULL`);
      const pending = await admin.query<{ v: string }>(`SELECT sealed_secret AS v FROM ${schema}.users WHERE sealed_secret IS NOT NULL`);
      return [...jobs.rows, ...pending.rows].map((r) => r.v);
    },
    async stillStored(_cfg, values) {
      const { rows } = await admin.query<{ n: string }>(
        `SELECT count(*) AS n FROM (SELECT payload AS v FROM ${schema}.outbox UNION ALL SELECT sealed_secret FROM ${schema}.users) s WHERE v = ANY($1)`,
        [values],
      );
      return Number(rows[0]!.n) > 0;
    },
  });

});
