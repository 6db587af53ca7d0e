import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { verifySignature } from "./signature.ts";

/** The secret the receiver checks signatures with; a config's events.webhook.secret. */
export const SECRET = "webhook-secret-0123456789abcdef";
export interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
  event: { type: string; occurredAt: string; data: Record<string, unknown> } | null;
  check: ReturnType<typeof verifySignature>;
  answered: number;
}

export interface Receiver {
  url: string;
  /** Every request, with what it was answered. */
  deliveries: Delivery[];
  /** The events accepted (answered 2xx), in arrival order. */
  accepted(): NonNullable<Delivery["event"]>[];
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1 that refuses what fails the signature check (401) or is stale (400),
 * and otherwise answers what `answer` says for the Nth request (default 200).
 */
export async function startReceiver(answer: (n: number, event: Delivery["event"]) => number = () => 200): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const check = verifySignature(SECRET, req.headers["x-gatehouse-signature"] as string | undefined, body, Date.now());
      let event: Delivery["event"] = null;
      try {
        event = JSON.parse(body) as Delivery["event"];
      } catch {
        event = null;
      }
      const answered = req.method !== "POST" ? 405 : check === "bad-signature" ? 401 : check === "stale" ? 400 : answer(deliveries.length + 1, event);
      deliveries.push({ headers: req.headers, body, event, check, answered });
      res.writeHead(answered, { "content-type": "text/plain" }).end(answered < 300 ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/gatehouse`,
    deliveries,
    accepted: () => deliveries.filter((d) => d.answered < 300).map((d) => d.event!),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
