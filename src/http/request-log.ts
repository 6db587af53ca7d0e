import type { Logger } from "pino";
import type { AppContext } from "../context.ts";

/**
 * What every request gets, whichever way it is answered (Koa's middleware in src/app.ts, or the
 * registration's front door): the same first headers, one count and timing, one debug line.
 */

/** The headers every answer starts with: its id, and what keeps browsers from sniffing or leaking it. */
export function answerHeaders(reqId: string): [string, string][] {
  return [
    ["X-Request-Id", reqId],
    ["X-Content-Type-Options", "nosniff"],
    ["Referrer-Policy", "no-referrer"],
  ];
}

/** One answered request: counted by route pattern, method and status, timed, and the debug access line. */
export function noteAnswered(
  deps: Pick<AppContext, "metrics">,
  requests: Logger,
  answered: { reqId: string; method: string; route: string; status: number; started: number },
): void {
  const seconds = (performance.now() - answered.started) / 1000;
  deps.metrics.countRequest(answered.route, answered.method, answered.status, seconds);
  requests.debug(
    { reqId: answered.reqId, method: answered.method, route: answered.route, status: answered.status, ms: Math.round(seconds * 1000) },
    "request",
  );
}
