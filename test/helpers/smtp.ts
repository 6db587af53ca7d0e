import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";
import { waitFor } from "./service.ts";

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
