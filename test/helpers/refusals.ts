import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import Database from "better-sqlite3";
import type supertest from "supertest";
import { withHarness, type Harness } from "./harness.ts";
import { cli, client, createKey, invitedAccount } from "./invites.ts";

// One refusal suite that every authenticated endpoint runs, as Unkey's API runs one shared security
// suite per protected route: the same kinds of bad credential, the same "nothing stored changed".

export interface Refusal {
  status: number;
  /** The error code of the JSON answer. */
  code: string;
}

export interface AuthenticatedEndpoint {
  /** The route and how the credential travels, e.g. "GET /invites_api?key=ID/SECRET". */
  name: string;
  config?: Parameters<typeof withHarness>[0];
  /** Makes a credential this endpoint accepts now: an API key, a session token, an auth_token. */
  grant(h: Harness): Promise<string>;
  /** Makes a credential that worked and was then withdrawn: a deleted key, an ended session, a token taken out of the config. */
  withdraw(h: Harness): Promise<string>;
  /** The request, asking for JSON, with `credential` where this endpoint reads it, or with none when undefined. */
  send(h: Harness, credential: string | undefined): supertest.Test;
  /** The status a granted credential gets. */
  accepted: number;
  /** Credentials of the right shape that are not right, made from a granted one. */
  wrong(granted: string): Record<string, string>;
  /** Endpoint-specific malformed credentials, beside the shared ones. */
  malformed?(granted: string): Record<string, string>;
  refused: { missing: Refusal; wrong: Refusal; malformed: Refusal; withdrawn: Refusal };
  /** A malformed credential this endpoint answers otherwise, by its name (an empty bearer token is no token). */
  except?: Record<string, Refusal>;
  /** After this many wrong credentials from one peer, the next is answered 429 TOO_MANY_ATTEMPTS. */
  rateLimit?: number;
  /** Anything else every refusal must (not) carry, e.g. no Location, no session cookie. */
  checkRefusal?(res: supertest.Response, what: string): void;
}

/** The same refusal for every kind of bad credential. */
export function refusedAlike(refusal: Refusal): AuthenticatedEndpoint["refused"] {
  return { missing: refusal, wrong: refusal, malformed: refusal, withdrawn: refusal };
}

/** Malformed credentials every endpoint is sent. */
const SHARED_MALFORMED: Record<string, string> = {
  "an empty credential": "",
  "a 4,000-character credential": "x".repeat(4000),
  "a credential of Latin-1 letters": "ÿäöü/ÿäöü",
  "a lone slash": "/",
};

/** Every row of every table in the harness's SQLite file, read beside the service: what "nothing stored changed" compares. */
export function databaseRows(h: Pick<Harness, "config">): Record<string, unknown[]> {
  const db = new Database(h.config.storage.replace(/^sqlite:/, ""), { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
    return Object.fromEntries(tables.map(({ name }) => [name, db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all()]));
  } finally {
    db.close();
  }
}

function assertRefused(endpoint: AuthenticatedEndpoint, res: supertest.Response, refusal: Refusal, what: string): void {
  assert.equal(res.status, refusal.status, `${what}: ${res.status} ${res.text}`);
  assert.match(String(res.headers["content-type"]), /^application\/json/, what);
  assert.equal(res.body.error, refusal.code, `${what}: ${res.text}`);
  if (refusal.status === 429) assert.match(String(res.headers["retry-after"]), /^[1-9]\d*$/, `${what}: Retry-After`);
  endpoint.checkRefusal?.(res, what);
}

type RefusalCase = [what: string, credential: string | undefined, refusal: Refusal];

/**
 * The shared refusals of one authenticated endpoint: no credential, wrong ones, malformed ones, a
 * withdrawn one and, where the endpoint has one, its rate limit. Each is answered with its status
 * and code, changes nothing stored, and leaves a granted credential working.
 */
export function describeAuthRefusals(endpoint: AuthenticatedEndpoint): void {
  const { refused } = endpoint;
  /** Sends the cases `prepare` makes (before the database is read) and checks each refusal, the database, and a fresh grant. */
  const refusalTest = (name: string, prepare: (h: Harness) => Promise<RefusalCase[]>) =>
    test(name, async () => {
      await withHarness(endpoint.config ?? {}, async (h) => {
        const cases = await prepare(h);
        assert.ok(cases.length > 0, "there is something to refuse");
        const before = databaseRows(h);
        for (const [what, credential, refusal] of cases) assertRefused(endpoint, await endpoint.send(h, credential), refusal, what);
        assert.deepEqual(databaseRows(h), before, "a refused request changes nothing stored");
        const res = await endpoint.send(h, await endpoint.grant(h));
        assert.equal(res.status, endpoint.accepted, `a granted credential still works: ${res.text}`);
      });
    });
  const title = (r: Refusal) => `${r.status} ${r.code}`;

  describe(`${endpoint.name}: the shared refusals`, () => {
    test(`a granted credential: ${endpoint.accepted}`, async () => {
      await withHarness(endpoint.config ?? {}, async (h) => {
        const res = await endpoint.send(h, await endpoint.grant(h));
        assert.equal(res.status, endpoint.accepted, res.text);
      });
    });

    refusalTest(`without a credential: ${title(refused.missing)}, and nothing stored changes`, async () => [
      ["no credential", undefined, refused.missing],
    ]);

    refusalTest(`wrong credentials: ${title(refused.wrong)}, and nothing stored changes`, async (h) =>
      Object.entries(endpoint.wrong(await endpoint.grant(h))).map(([what, credential]) => [what, credential, refused.wrong]),
    );

    refusalTest(`malformed credentials: ${title(refused.malformed)}, never a 5xx, and nothing stored changes`, async (h) => {
      const malformed = { ...SHARED_MALFORMED, ...endpoint.malformed?.(await endpoint.grant(h)) };
      return Object.entries(malformed).map(([what, credential]) => [what, credential, endpoint.except?.[what] ?? refused.malformed]);
    });

    refusalTest(`a withdrawn credential: ${title(refused.withdrawn)}, and nothing stored changes`, async (h) => [
      ["a withdrawn credential", await endpoint.withdraw(h), refused.withdrawn],
    ]);

    const limit = endpoint.rateLimit;
    if (limit !== undefined) {
      refusalTest(`after ${limit} wrong credentials from one peer the next is 429 TOO_MANY_ATTEMPTS with Retry-After`, async (h) => {
        const [wrong] = Object.values(endpoint.wrong(await endpoint.grant(h)));
        const tries: RefusalCase[] = Array.from({ length: limit }, (_, i) => [`wrong credential ${i + 1} of ${limit}`, wrong, refused.wrong]);
        return [...tries, ["one wrong credential too many", wrong, { status: 429, code: "TOO_MANY_ATTEMPTS" }]];
      });
    }
  });
}

type Credential = Pick<AuthenticatedEndpoint, "grant" | "withdraw" | "wrong" | "malformed">;

/** The other character of a pair, so a changed credential keeps its length and alphabet. */
function changed(text: string, at: number): string {
  const c = text.charAt(at);
  return `${text.slice(0, at)}${c === "A" ? "B" : "A"}${text.slice(at + 1)}`;
}

/** An API key, `ID/SECRET`, made with `gatehouse keys create`; withdrawn with `keys delete`. */
export const API_KEY: Credential = {
  grant: async (h) => (await createKey(h, "granted key")).key,
  async withdraw(h) {
    const { key, id } = await createKey(h, "deleted key");
    assert.equal((await cli(h, "keys", "delete", id)).code, 0);
    return key;
  },
  wrong(granted) {
    const [id = "", secret = ""] = granted.split("/");
    return {
      "a wrong secret": `${id}/${changed(secret, secret.length - 1)}`,
      "a wrong id": `nope/${secret}`,
      "the secret cut short": `${id}/${secret.slice(0, -1)}`,
      "the id twice": `${id}/${id}`,
    };
  },
  malformed(granted) {
    const [id = "", secret = ""] = granted.split("/");
    return { "the id without a slash": id, "the secret without an id": `/${secret}`, "the id and a slash": `${id}/` };
  },
};

let sessions = 0;

/** The identity cookie's session token, from accepting an invite; withdrawn by logging out. */
export const SESSION: Credential = {
  async grant(h) {
    sessions += 1;
    const { cookie } = await invitedAccount(h, `granted${sessions}`);
    return cookie.slice("identity=".length);
  },
  async withdraw(h) {
    const token = await SESSION.grant(h);
    const out = await client(h).post("/api/auth/logout").set("Cookie", `identity=${token}`);
    assert.equal(out.status, 204, out.text);
    return token;
  },
  wrong: (granted) => ({
    "a token of the same shape": randomBytes(32).toString("base64url"),
    "a token of another shape": "not-a-session",
    "the token with one character changed": changed(granted, 0),
    "the token cut short": granted.slice(0, -1),
  }),
};
