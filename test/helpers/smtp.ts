import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { freePort, waitFor, type Lifetimes } from "./lifetimes.ts";

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: Buffer;
}

export interface SmtpSink {
  port: number;
  /** Every message accepted with DATA. */
  received: ReceivedMail[];
  /** Every RCPT TO the server was asked for, accepted or not. */
  rcptAttempts: string[];
  /** Resolves once at least `count` messages arrived; rejects after `timeoutMs`. */
  waitForMail(count?: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** A port picked beforehand (e.g. one the service already tried); 0 for any. */
  port?: number;
  /** Refuse every recipient with this reply, as a receiving server's final word. */
  refuseRcpt?: { code: number; message: string };
}

/** A real SMTP server on 127.0.0.1 that keeps what it receives: plain text, no auth required, no TLS. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const received: ReceivedMail[] = [];
  const rcptAttempts: string[] = [];
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    // Connections still open at close are cut after a second instead of smtp-server's 30.
    closeTimeout: 1000,
    onRcptTo(address, _session, callback) {
      rcptAttempts.push(address.address);
      if (options.refuseRcpt) {
        const err = new Error(options.refuseRcpt.message) as Error & { responseCode: number };
        err.responseCode = options.refuseRcpt.code;
        callback(err);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  let closed = false;
  return {
    port,
    received,
    rcptAttempts,
    async waitForMail(count = 1, timeoutMs = 5000) {
      await waitFor(() => received.length >= count, { timeoutMs, what: `${count} mail(s) at the SMTP server` });
      return received;
    },
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * How a test wants its mail server: `true` (or sink options) for a sink listening from the start,
 * "down" for a port nobody listens on yet, where the test may start one later.
 */
export type SmtpChoice = true | Omit<SmtpSinkOptions, "port"> | "down";

/** One loopback SMTP port for a test's whole life: the config points at it; sinks come and go on it. */
export interface SmtpPort {
  readonly port: number;
  /** `smtp://127.0.0.1:PORT/?ignoreTLS=true`, the transport a config uses to reach the port. */
  readonly url: string;
  /** The sink listening now; throws when none is. */
  readonly sink: SmtpSink;
  /** Starts a sink on the port, closing the one listening before (a restarted or replaced server). */
  start(options?: Omit<SmtpSinkOptions, "port">): Promise<SmtpSink>;
  /** Closes the sink listening now, if any: the server goes down. */
  stop(): Promise<void>;
}

/** An SmtpPort as `choice` asks, owned by `lifetimes`, so whatever sink is up at the end is closed. */
export async function openSmtpPort(lifetimes: Lifetimes, choice: SmtpChoice): Promise<SmtpPort> {
  let current: SmtpSink | undefined = choice === "down" ? undefined : await startSmtpSink(choice === true ? {} : choice);
  const port = current?.port ?? (await freePort());
  const handle: SmtpPort = {
    port,
    url: `smtp://127.0.0.1:${port}/?ignoreTLS=true`,
    get sink(): SmtpSink {
      if (!current) throw new Error(`no SMTP sink is listening on port ${port}`);
      return current;
    },
    async start(options = {}) {
      await handle.stop();
      current = await startSmtpSink({ ...options, port });
      return current;
    },
    async stop() {
      const sink = current;
      current = undefined;
      await sink?.close();
    },
  };
  return lifetimes.own(handle, (h) => h.stop());
}

/** The SMTP port a harness or service was made with; a clear failure when the test asked for none. */
export function requireSmtp(smtp: SmtpPort | undefined, owner: string): SmtpPort {
  if (!smtp) throw new Error(`${owner} has no SMTP sink: pass { smtp: true } (or sink options, or "down")`);
  return smtp;
}
