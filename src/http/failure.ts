import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { AppContext } from "../context.ts";
import { storageFullError } from "../domain/write-health.ts";
import { AppError, isAppError, isStoreUnavailable } from "../errors.ts";
import type { RefusalLog } from "../log.ts";
import { isStorageFull } from "../store/errors.ts";

/**
 * What happens to a request that failed, wherever it was answered: in Koa's error middleware
 * (src/app.ts) or on the registration's front door (src/http/front-door.ts). One place decides the
 * status, the log line and the counters, so both answer a failure alike.
 */

interface HttpishError {
  status?: number;
  expose?: boolean;
  message?: string;
}

/** Turns anything thrown into an AppError; unexpected errors stay unexpected (500). */
export function classify(err: unknown): AppError | null {
  if (isAppError(err)) return err;
  if (isStorageFull(err)) return storageFullError();
  const e = err as HttpishError;
  if (e && typeof e.status === "number" && e.status >= 400 && e.status < 500) {
    if (e.status === 404) return new AppError("NOT_FOUND", "not found");
    if (e.status === 413) return new AppError("BODY_TOO_LARGE", "body too large");
    if (e.status === 415) return new AppError("UNSUPPORTED_MEDIA_TYPE", "unsupported media type");
    return new AppError("MALFORMED_REQUEST", e.expose && e.message ? e.message : "bad request");
  }
  return null;
}

export type ClientFault = "timeout" | "aborted" | "parse";

/** Errors that are the client's doing (too slow, gone, not speaking HTTP): never error-level lines. */
export function clientFaultOf(err: unknown): ClientFault | null {
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return "timeout";
  // A connection closed in the middle of a request: the parser reports it, but nothing was malformed.
  if (code === "HPE_INVALID_EOF_STATE") return "aborted";
  if (code.startsWith("HPE_")) return "parse";
  if (["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE"].includes(code)) return "aborted";
  return null;
}

/** The request a failure belongs to, as its log lines name it. */
export interface FailedRequest {
  reqId: string;
  method: string;
  /** The matched route pattern, never the raw path: verify URLs carry tokens. */
  route: string;
  /** The end-user IP: the website's `ip` field when it gave one, else the peer. */
  ip: string;
  peer: string;
  socket: Socket;
  /** Set once the request has been counted as the client's fault. */
  clientFault?: ClientFault;
}

type FailureDeps = Pick<AppContext, "log" | "metrics" | "writeHealth">;

/**
 * Counts a request the client did not finish, once: Node reports one fault both to the error
 * event and, as a body that could not be read, to the failure path, in either order.
 */
export function noteClientFault(deps: Pick<AppContext, "metrics">, requests: Logger, request: FailedRequest, fault: ClientFault, reason: string): void {
  if (request.clientFault) return;
  request.clientFault = fault;
  deps.metrics.clientErrors.inc({ reason: fault });
  requests.debug({ reqId: request.reqId, method: request.method, route: request.route, fault, reason }, "client did not finish the request");
}

/** Logs and counts a failure; returns it as a refusal, or null for an unexpected error (a 500). */
export function reportFailure(deps: FailureDeps, requests: Logger, refusals: RefusalLog, err: unknown, request: FailedRequest): AppError | null {
  const refusal = classify(err);
  deps.writeHealth.noteFailure(err);
  // The operator's problem, not the client's: said at error level besides the refusal line.
  if (refusal?.code === "STORAGE_FULL") deps.log.error({ reqId: request.reqId, route: request.route }, "store is full");
  if (!refusal) {
    deps.log.error({ reqId: request.reqId, err: err instanceof Error ? err.stack : String(err) }, "unexpected error");
  } else if (refusal.code === "REQUEST_INCOMPLETE") {
    // The socket keeps why it ended (a request timeout, a reset); a plain close leaves nothing.
    noteClientFault(deps, requests, request, clientFaultOf(request.socket.errored) ?? "aborted", refusal.message);
  } else {
    // Every refusal is logged with its reason and the end-user IP (the website's, when it said so).
    // A database outage is the operator's to notice, but no fault of ours: warn.
    refusals(isStoreUnavailable(refusal) ? "warn" : "info", {
      reqId: request.reqId,
      method: request.method,
      route: request.route,
      status: refusal.status,
      code: refusal.code,
      reason: refusal.message,
      ip: request.ip,
      peer: request.peer,
    });
  }
  return refusal;
}

/** The status, error code, message and extra headers every answer to a failure carries. */
export interface FailureAnswer {
  status: number;
  code: string;
  message: string;
  headers: [string, string][];
}

export function failureAnswer(refusal: AppError | null): FailureAnswer {
  const headers: [string, string][] = [];
  if (refusal?.options.retryAfter !== undefined) headers.push(["Retry-After", String(Math.max(1, refusal.options.retryAfter))]);
  if (refusal?.options.allow) headers.push(["Allow", refusal.options.allow.join(", ")]);
  headers.push(["Cache-Control", "no-store"]);
  return {
    status: refusal?.status ?? 500,
    code: refusal?.code ?? "INTERNAL_ERROR",
    message: refusal?.message ?? "internal error",
    headers,
  };
}

/** A failure answered without a page: `{error, message}` as JSON to a client that asks for it, else the message as text. */
export function plainFailure(answer: FailureAnswer, json: boolean): { type: string; body: string } {
  return json
    ? { type: "application/json; charset=utf-8", body: JSON.stringify({ error: answer.code, message: answer.message }) }
    : { type: "text/plain; charset=utf-8", body: answer.message };
}

/**
 * A connection that failed around a request (Koa's error event, or the front door's answer going
 * out): the client's doing is counted as such, anything else is an error-level line.
 */
export function connectionError(deps: Pick<AppContext, "log" | "metrics">, requests: Logger, request: FailedRequest | null, err: unknown): void {
  const fault = clientFaultOf(err);
  if (fault && request) noteClientFault(deps, requests, request, fault, String(err));
  else if (fault) deps.log.debug({ fault, reason: String(err) }, "client connection error");
  else deps.log.error({ err: String(err) }, "koa error");
}
