import pino, { type DestinationStream, type Logger } from "pino";

/**
 * JSON lines. Field names that could carry a secret are censored wherever they appear, as a net
 * under the rule that code never logs them in the first place.
 */
export const REDACTED_PATHS = [
  "password",
  "*.password",
  "auth_token",
  "*.auth_token",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "mail",
  "*.mail",
  "to",
  "*.to",
  "authorization",
  "*.authorization",
  "headers.cookie",
];

let lastMs = -1;
let lastTime = "";

/** pino's ISO time, made once a millisecond instead of once a line (thousands of lines a second under a flood). */
export function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastTime;
}

export function createLogger(level = "info", destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "gatehouse", pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: isoTime,
    },
    destination ?? batchedStdout(),
  );
}

/** Lines are handed to sonic-boom when this many characters are waiting… */
const LOG_BATCH_CHARS = 16 * 1024;
/** …or this long after the first of them was logged. */
const LOG_BATCH_MS = 20;

/**
 * Standard output, handed to sonic-boom in batches instead of line by line. Under a flood of
 * refusals every line cost a write on libuv's thread pool, and the wake-ups that come with it,
 * and sonic-boom measured its whole pending buffer on every line. Lines keep their order, appear
 * within LOG_BATCH_MS, and any still waiting when the process exits are handed over before pino's
 * own exit handler flushes sonic-boom.
 */
function batchedStdout(): DestinationStream {
  let pending: string[] = [];
  let chars = 0;
  let timer: NodeJS.Timeout | null = null;
  const handOver = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    chars = 0;
    boom.write(text);
  };
  process.prependListener("exit", handOver);
  const boom = pino.destination({ fd: 1, sync: false });
  return {
    write(line: string) {
      pending.push(line);
      chars += line.length;
      if (chars >= LOG_BATCH_CHARS) handOver();
      else if (!timer) timer = setTimeout(handOver, LOG_BATCH_MS).unref();
    },
    flush(cb?: (err?: Error) => void) {
      handOver();
      boom.flush(cb);
    },
    flushSync() {
      handOver();
      boom.flushSync();
    },
  } as DestinationStream;
}

/**
 * For the lines written on every request (each refusal, the debug access line). Their fields are a
 * fixed set chosen in src/app.ts, none of them secret, so they skip the redaction pass, which costs
 * as much as the rest of the line; test/e2e/redaction.test.ts still reads them for every flow.
 */
export function requestLogger(log: Logger): Logger {
  return log.child({}, { redact: { paths: [] } });
}

/** The fields of the one line per refusal (DESIGN §7): a fixed set, none of them secret. */
export interface RefusalFields {
  reqId: string;
  method: string;
  route: string;
  status: number;
  code: string;
  reason: string;
  /** The end-user IP: the website's `ip` field when it gave one, else the peer. */
  ip: string;
  peer: string;
}

export type RefusalLog = (level: "info" | "warn", fields: RefusalFields) => void;

const LEVEL_NUMBERS = { info: 30, warn: 40 } as const;
const str = JSON.stringify;

/**
 * Writes the refusal line straight to the logger's stream, serialized by hand: the line pino
 * would write for `log[level](fields, "request refused")` (same fields, order, level, time and
 * bindings), at a fraction of the cost, since a flood of refusals writes thousands a second.
 * test/redaction.test.ts and the refusal tests read these lines as they read pino's.
 */
export function refusalLog(log: Logger): RefusalLog {
  const stream = (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym]!;
  const bindings = (log as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? "";
  return (level, f) => {
    if (!log.isLevelEnabled(level)) return;
    stream.write(
      `{"level":${LEVEL_NUMBERS[level]}${isoTime()}${bindings},"reqId":${str(f.reqId)},"method":${str(f.method)},"route":${str(f.route)},` +
        `"status":${f.status},"code":${str(f.code)},"reason":${str(f.reason)},"ip":${str(f.ip)},"peer":${str(f.peer)},"msg":"request refused"}\n`,
    );
  };
}
