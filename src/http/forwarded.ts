import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";

/** The last of a comma-separated header's values: the one the nearest proxy added. */
export function lastForwarded(value: string): string {
  const values = value.split(",").map((v) => v.trim()).filter((v) => v !== "");
  return values[values.length - 1] ?? "";
}

/** A header as Koa's `ctx.get` reads it (Node joins repeated ones with ", "). */
function header(req: IncomingMessage, name: string): string {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : (value ?? "");
}

/**
 * "https" or "http", as Koa's `ctx.protocol` answers in this app (src/app.ts trustLastHop): the
 * socket's own, else, with trustProxy, the last X-Forwarded-Proto value.
 */
export function requestProtocol(req: IncomingMessage, trustProxy: boolean): string {
  if ((req.socket as Partial<TLSSocket>).encrypted) return "https";
  const forwarded = trustProxy ? lastForwarded(header(req, "x-forwarded-proto")).toLowerCase() : "";
  return forwarded || "http";
}

/**
 * The peer address as Koa's `ctx.ip` reads it with `maxIpsCount: 1`: with trustProxy, the last
 * X-Forwarded-For value (the one our proxy added), else the socket's address.
 */
export function peerAddress(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? header(req, "x-forwarded-for").split(",").map((v) => v.trim()).slice(-1)[0] : "";
  return forwarded || req.socket.remoteAddress || "";
}
