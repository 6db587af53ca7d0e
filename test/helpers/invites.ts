import { existsSync, readFileSync } from "node:fs";
import supertest from "supertest";
import { cli } from "./cli.ts";
import type { Harness } from "./harness.ts";

export { cli, type CliResult } from "./cli.ts";

export const PASSWORD = "correct horse battery";

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
