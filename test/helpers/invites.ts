import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import supertest from "supertest";
import { cli } from "./cli.ts";
import type { Harness } from "./harness.ts";

export { cli, type CliResult } from "./cli.ts";

export const PASSWORD = "correct horse battery";
export const PUBLIC_URL = "http://gatehouse.test";
/** mod_invites_api's path (invites.apiPath's default). */
export const API_PATH = "/invites_api";
/** invites.ttlSeconds' default, in milliseconds. */
export const DEFAULT_TTL_MS = 604_800 * 1000;
export const INVITE_URL = /^http:\/\/gatehouse\.test\/invite\/([A-Za-z0-9_-]{22,})$/;

/** A client without a cookie jar: each request carries only the headers the test sets. */
export function client(h: Pick<Harness, "app">): ReturnType<typeof supertest> {
  return supertest(h.app.callback());
}

/** `keys create NAME`: the printed `ID/SECRET`, split. */
export async function createKey(h: Pick<Harness, "configPath">, name = "test key"): Promise<{ key: string; id: string; secret: string }> {
  const res = await cli(h, "keys", "create", name);
  if (res.code !== 0 || res.out.length !== 1) throw new Error(`keys create failed: ${res.code} ${res.err.join("\n")}`);
  const key = res.out[0]!;
  const slash = key.indexOf("/");
  return { key, id: key.slice(0, slash), secret: key.slice(slash + 1) };
}

/** The invite token at the end of an invite URL. */
export function tokenOf(url: string): string {
  const match = /\/invite\/([^/?#]+)$/.exec(url);
  if (!match) throw new Error(`not an invite URL: ${url}`);
  return decodeURIComponent(match[1]!);
}

/** An invite issued through POST /api/invite with a fresh API key named `keyName`; returns its id (the token). */
export async function issueInvite(h: Pick<Harness, "app" | "configPath">, keyName = "Alice's key"): Promise<{ id: string; issuer: string; key: string }> {
  const { key } = await createKey(h, keyName);
  const res = await client(h).post("/api/invite").set("Authorization", `Bearer ${key}`);
  if (res.status !== 200) throw new Error(`POST /api/invite answered ${res.status}: ${res.text}`);
  return { id: res.body.id as string, issuer: res.body.issuer as string, key };
}

/** The `identity=VALUE` pair of a response's Set-Cookie, and the whole header line it came in. */
export function identityCookie(res: { headers: Record<string, unknown> }): { pair: string; value: string; line: string } | null {
  const raw = res.headers["set-cookie"];
  const lines = Array.isArray(raw) ? (raw as string[]) : typeof raw === "string" ? [raw] : [];
  const line = lines.find((l) => l.startsWith("identity="));
  if (!line) return null;
  const pair = line.split(";")[0]!;
  return { pair, value: pair.slice("identity=".length), line };
}

/** Every byte SQLite holds for the harness: the database file and its write-ahead log. */
export function databaseBytes(h: Pick<Harness, "config">): Buffer {
  const file = h.config.storage.replace(/^sqlite:/, "");
  return Buffer.concat([file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)));
}

/** Whether `needle` is in the database bytes as text (UTF-8) or as UTF-16 (SQLite may store either). */
export function databaseContains(h: Pick<Harness, "config">, needle: string): boolean {
  const bytes = databaseBytes(h);
  return bytes.includes(Buffer.from(needle, "utf8")) || bytes.includes(Buffer.from(needle, "utf16le"));
}

/** POST /api/invite/:id as pilcrow's client sends it. */
export function accept(h: Pick<Harness, "app">, id: string, name: string, password = PASSWORD) {
  return client(h).post(`/api/invite/${encodeURIComponent(id)}`).set("Accept", "application/json").send({ name, password });
}

/** An account made through an invite, and its session cookie pair (`identity=…`). */
export async function invitedAccount(h: Pick<Harness, "app" | "configPath">, name: string, keyName = "Alice's key"): Promise<{ cookie: string; inviteId: string }> {
  const { id } = await issueInvite(h, keyName);
  const res = await accept(h, id, name);
  assert.equal(res.status, 204, res.text);
  const cookie = identityCookie(res);
  assert.ok(cookie, "accepting sets the identity cookie");
  return { cookie: cookie.pair, inviteId: id };
}

/** GET /api/me, with the cookie pair when one is given. */
export function me(h: Pick<Harness, "app">, cookie?: string) {
  const req = client(h).get("/api/me").set("Accept", "application/json");
  return cookie ? req.set("Cookie", cookie) : req;
}

export function login(h: Pick<Harness, "app">, name: string, password: string) {
  return client(h).post("/api/auth/login").set("Accept", "application/json").send({ name, password });
}

/** The rows of `invites list`: handle, state, uses, issuer and bound username of each invite. */
export async function handles(h: Pick<Harness, "configPath">): Promise<{ handle: string; state: string; uses: string; issuer: string; username: string }[]> {
  const res = await cli(h, "invites", "list");
  assert.equal(res.code, 0, res.err.join("\n"));
  return res.out.map((line) => {
    const [handle = "", state = "", uses = "", , issuer = "", username = ""] = line.split("\t");
    return { handle, state, uses, issuer, username };
  });
}

export async function accountNames(h: Pick<Harness, "ctx">): Promise<string[]> {
  return (await h.ctx.store.listAccounts()).map((a) => a.username);
}
