import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import nodemailer from "nodemailer";
import type { Config } from "../config.ts";
import { preparePrivateDir } from "../file-modes.ts";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface MailTransport {
  /** Where mail goes, for logs; never includes credentials. */
  readonly description: string;
  /** True for `dir:` transports, the development default, where links may be logged for convenience. */
  readonly isLocalDirectory: boolean;
  send(message: MailMessage): Promise<{ file?: string }>;
  close(): void;
}

/** Whether a send failure is the receiving server's final word (5xx) rather than something to retry. */
export function isPermanentMailError(err: unknown): boolean {
  const code = (err as { responseCode?: unknown }).responseCode;
  return typeof code === "number" && code >= 500 && code < 600;
}

function describeSmtp(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return "smtp";
  }
}

/** `warn` hears when an existing `dir:` mail directory was open to other users and has been made 0700. */
export function createMailTransport(mail: Config["mail"], warn: (message: string) => void = () => {}): MailTransport {
  const from = mail.from;
  if (typeof mail.transport === "string" && mail.transport.startsWith("dir:")) {
    const dir = resolve(mail.transport.slice(4));
    // The files hold addresses and verify links: the directory is the owner's alone, like the store's.
    for (const notice of preparePrivateDir(dir)) warn(notice);
    const writer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: "unix" });
    return {
      description: `dir:${dir}`,
      isLocalDirectory: true,
      async send(message) {
        const info = await writer.sendMail({ from, ...message });
        const file = join(dir, `${Date.now()}-${randomBytes(4).toString("hex")}.eml`);
        // Synchronous: for a file of a few KiB that is a sixth of the CPU of fs/promises (open,
        // write and close each a trip through the thread pool), for ~30 µs of event loop. The
        // directory is (re)made every time (it may have been removed), which costs ~5 µs when it exists.
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        writeFileSync(file, info.message as Buffer, { mode: 0o600 });
        return { file };
      },
      close() {},
    };
  }
  // A send must give up well inside the outbox lease (2 min), or another sender could take the
  // same mail up again while this one is still stuck on a silent server. Explicit settings win.
  const timeouts = { connectionTimeout: 30_000, greetingTimeout: 30_000, socketTimeout: 60_000 };
  const options = typeof mail.transport === "string" ? { ...timeouts, url: mail.transport } : { ...timeouts, ...mail.transport };
  const transport = nodemailer.createTransport(options as Parameters<typeof nodemailer.createTransport>[0]);
  return {
    description: typeof mail.transport === "string" ? describeSmtp(mail.transport) : "smtp (options)",
    isLocalDirectory: false,
    async send(message) {
      await transport.sendMail({ from, ...message });
      return {};
    },
    close() {
      transport.close();
    },
  };
}
