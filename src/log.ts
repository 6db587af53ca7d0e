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

export function createLogger(level = "info", destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "gatehouse", pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/**
 * For the lines written on every request (each refusal, the debug access line). Their fields are a
 * fixed set chosen in src/app.ts, none of them secret, so they skip the redaction pass, which costs
 * as much as the rest of the line; test/e2e/redaction.test.ts still reads them for every flow.
 */
export function requestLogger(log: Logger): Logger {
  return log.child({}, { redact: { paths: [] } });
}
