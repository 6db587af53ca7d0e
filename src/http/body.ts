import { isUtf8 } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Context } from "koa";
import getRawBody from "raw-body";
import typeis from "type-is";
import { AppError } from "../errors.ts";
import { parseIp } from "../domain/filters.ts";
import { parseMail, type CanonicalMail } from "../domain/mail-address.ts";
import type { RegistrationRequest } from "../domain/registration.ts";

/** mod_register_json bodies and forms alike: anything larger is refused before it is read whole. */
export const BODY_LIMIT = 64 * 1024;


/** Reads the request body into memory, refusing (413) as soon as it passes the limit. */
export function readBody(ctx: Context, limit = BODY_LIMIT): Promise<Buffer> {
  return readRequestBody(ctx.req, limit);
}

/** readBody on Node's own request, for the registration's front door (src/http/front-door.ts). */
export async function readRequestBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<Buffer> {
  const encoding = (req.headers["content-encoding"] || "identity").toLowerCase();
  if (encoding !== "identity") throw new AppError("UNSUPPORTED_MEDIA_TYPE", `content-encoding ${encoding} is not accepted`);
  try {
    return await getRawBody(req, { limit, length: req.headers["content-length"] || undefined });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === "entity.too.large") throw new AppError("BODY_TOO_LARGE", `body is larger than ${limit} bytes`);
    if (type === "request.size.invalid") throw new AppError("MALFORMED_REQUEST", "the body is not as long as Content-Length says");
    // The client went away or was cut off (too slow): nobody is left to read an answer.
    throw new AppError("REQUEST_INCOMPLETE", "the request body could not be read");
  }
}

/** As TextDecoder("utf-8", { fatal: true }) decodes (a leading BOM dropped), at a fraction of its cost. */
export function decodeUtf8(bytes: Uint8Array): string {
  if (!isUtf8(bytes)) throw new AppError("MALFORMED_REQUEST", "body is not valid UTF-8");
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Whether the body is sent as JSON itself (Content-Type application/json), as Koa's `ctx.is` tells. */
export function isJsonBody(req: IncomingMessage): boolean {
  return typeis(req, ["application/json"]) === "application/json";
}

// Standard and URL-safe alphabets, padding optional; whitespace (line wrapping) is removed first.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
const WHITESPACE = /\s/;

export function decodeBase64(text: string): Buffer {
  const compact = WHITESPACE.test(text) ? text.replace(/\s+/g, "") : text;
  let unpadded = compact.length;
  while (unpadded > 0 && compact.charCodeAt(unpadded - 1) === 0x3d) unpadded--;
  if (compact.length === 0 || !BASE64.test(compact) || unpadded % 4 === 1) {
    // The usual first mistake is posting the JSON as it is: say what was expected and how to make it.
    const what = compact.startsWith("{") || compact.startsWith("[") ? "body looks like raw JSON, not base64" : "body is not base64";
    throw new AppError("MALFORMED_REQUEST", `${what}: send base64-encoded JSON (e.g. \`base64 -w0 registration.json\`), or the JSON itself with Content-Type: application/json`);
  }
  return Buffer.from(compact, "base64");
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError("MALFORMED_REQUEST", "body is not valid JSON");
  }
}

const FIELDS = ["username", "password", "ip", "mail", "auth_token"] as const;

/** DESIGN §3 row 4: base64 of a JSON object with five string fields, a real IP and a mail address. */
export function decodeRegistration(body: Buffer, isJson: boolean): RegistrationRequest {
  const text = isJson ? decodeUtf8(body) : decodeUtf8(decodeBase64(body.toString("latin1")));
  const value = parseJson(text);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AppError("MALFORMED_REQUEST", "body must be a JSON object");
  }
  const record = value as Record<string, unknown>;
  for (const field of FIELDS) {
    if (typeof record[field] !== "string") throw new AppError("MALFORMED_REQUEST", `field ${field} is missing or not a string`);
  }
  const fields = record as Record<(typeof FIELDS)[number], string>;
  if (!parseIp(fields.ip)) throw new AppError("MALFORMED_REQUEST", "ip is not an IP address");
  // Optional (DESIGN §11): what the person tells the moderators; its length and characters are the domain's to check.
  const reason = record["reason"];
  if (reason !== undefined && reason !== null && typeof reason !== "string") throw new AppError("MALFORMED_REQUEST", "field reason is not a string");
  // Optional (DESIGN §10): the language of the website's page, for the mail. Not mod_register_json's.
  const lang = record["lang"];
  if (lang !== undefined && typeof lang !== "string") throw new AppError("MALFORMED_REQUEST", "field lang is not a string");
  return {
    username: fields.username, password: fields.password, ip: fields.ip, mail: checkMail(fields.mail), auth_token: fields.auth_token,
    ...(typeof reason === "string" ? { reason } : {}),
    ...(lang !== undefined ? { lang } : {}),
  };
}

/**
 * Runs a registration through the decoder once, at start: the first real one would otherwise pay
 * for what V8 and ICU set up on first use (UTF-8, Unicode normalization, the address and IP
 * parsers), right when a restarted server may be taking a flood.
 */
export function warmDecoder(): void {
  const sample = { username: "warm", password: "warm-up-password", ip: "192.0.2.1", mail: "warm@example.org", auth_token: "-" };
  decodeRegistration(Buffer.from(Buffer.from(JSON.stringify(sample)).toString("base64"), "latin1"), false);
  decodeRegistration(Buffer.from(JSON.stringify({ ...sample, ip: "2001:db8::1", mail: "warm@bücher.example" })), true);
}

function checkMail(text: string): CanonicalMail {
  const mail = parseMail(text);
  if (mail === null) throw new AppError("MALFORMED_REQUEST", "mail is not a mail address");
  return mail;
}

/** A small form or JSON body, as the verify pages post it. */
export async function readForm(ctx: Context): Promise<Record<string, string>> {
  const body = await readBody(ctx);
  const text = decodeUtf8(body);
  if (ctx.is("application/json")) {
    const value = parseJson(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new AppError("MALFORMED_REQUEST", "body must be a JSON object");
    }
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
  }
  return Object.fromEntries(new URLSearchParams(text));
}
