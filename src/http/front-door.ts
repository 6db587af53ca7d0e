import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import onFinished from "on-finished";
import type { Logger } from "pino";
import type { AppContext } from "../context.ts";
import type { RefusalLog } from "../log.ts";
import { connectionError, failureAnswer, plainFailure, reportFailure, type FailedRequest } from "./failure.ts";
import { peerAddress, requestProtocol } from "./forwarded.ts";
import { handleRegistration, type RegistrationCall } from "./register.ts";
import { answerHeaders, noteAnswered } from "./request-log.ts";
import { prefersJson } from "./respond.ts";

/**
 * The registration servlet answered on Node's own request, before Koa builds a context for it.
 *
 * Registrations are what a flood is made of, and most of them are refused in a few microseconds
 * of our own work; Koa's context, its middleware chain and eight routers cost several times that
 * (issue 13's profiles). So `POST {basePath}` (and the bare path without its slash) is answered
 * here, by the same code as Koa's route (handleRegistration), with the same failure handling
 * (src/http/failure.ts): the same status, headers, body, log lines and metrics. Everything else,
 * and any registration whose path is not exactly the mounted one, goes to Koa.
 * test/http/front-door.test.ts sends every kind of registration both ways and compares.
 */
export function withFrontDoor(
  deps: AppContext,
  requests: Logger,
  refusals: RefusalLog,
  koa: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  // Mounted at start-up, as Koa's router is (register.basePath takes a restart).
  const basePath = deps.config.register.basePath;
  const bare = basePath.replace(/\/$/, "");
  return async (req, res) => {
    if (req.method !== "POST" || !isRegistrationPath(req.url ?? "", basePath, bare)) return koa(req, res);
    try {
      await answerRegistration(deps, requests, refusals, basePath, req, res);
    } catch (err) {
      // Failures are answered inside; this is only for a fault in the answering itself.
      deps.log.error({ err: err instanceof Error ? err.stack : String(err) }, "unexpected error");
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else {
        res.destroy();
      }
    }
  };
}

function isRegistrationPath(url: string, basePath: string, bare: string): boolean {
  const query = url.indexOf("?");
  const path = query < 0 ? url : url.slice(0, query);
  return path === basePath || (bare !== "" && path === bare);
}

async function answerRegistration(
  deps: AppContext,
  requests: Logger,
  refusals: RefusalLog,
  route: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const started = performance.now();
  const reqId = randomUUID();
  const trustProxy = deps.config.trustProxy;
  const peer = peerAddress(req, trustProxy);
  const request: FailedRequest = { reqId, method: "POST", route, ip: peer, peer, socket: req.socket };
  // As Koa does for every response: a socket that fails while the answer goes out is reported.
  onFinished(res, (err) => {
    if (err) connectionError(deps, requests, request, err);
  });
  // Koa's headers, in Koa's order, written in one go.
  const headers = answerHeaders(reqId).flat();
  const call: RegistrationCall = { req, secure: requestProtocol(req, trustProxy) === "https", peer };
  let status: number;
  let body: string;
  try {
    body = await handleRegistration(deps, call);
    status = 200;
    headers.push("Content-Type", "text/plain; charset=utf-8", "Cache-Control", "no-store");
  } catch (err) {
    request.ip = call.endUserIp ?? peer;
    const answer = failureAnswer(reportFailure(deps, requests, refusals, err, request));
    const plain = plainFailure(answer, prefersJson(req));
    status = answer.status;
    for (const [name, value] of answer.headers) headers.push(name, value);
    headers.push("Content-Type", plain.type);
    body = plain.body;
  }
  noteAnswered(deps, requests, { reqId, method: "POST", route, status, started });
  // As Koa: nothing is written to a client that has gone.
  if (res.writableEnded || (res.socket !== null && !res.socket.writable)) return;
  headers.push("Content-Length", String(Buffer.byteLength(body)));
  res.writeHead(status, headers);
  res.end(body);
}