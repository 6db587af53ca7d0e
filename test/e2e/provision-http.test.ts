import { randomBytes } from "node:crypto";
import { after, before, describe } from "node:test";
import pg from "pg";
import { RECEIVER_SECRET as SECRET, startAccountReceiver as startReceiver } from "../helpers/account-receiver.ts";
import { provisionScenarios } from "./provision-scenarios.ts";

const PG = process.env["GATEHOUSE_TEST_PG"];

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
