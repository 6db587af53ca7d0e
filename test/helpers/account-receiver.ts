import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { verifySignature } from "./signature.ts";

/** The secret the receiver checks signatures with: the http target's `secret`. */
export const RECEIVER_SECRET = "receiver-secret-0123456789";

/**
 * An operator's own account endpoint: signed POST creates (409 for a name someone else holds, 2xx
 * again for the same account, so a retried create is harmless), DELETE removes, /check answers
 * 409 for a taken name. "Logging in" is asking it whether the password is the account's.
 */
export async function startAccountReceiver() {
  const accounts = new Map<string, string>();
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (verifySignature(RECEIVER_SECRET, req.headers["x-gatehouse-signature"] as string | undefined, body, Date.now()) !== "ok") {
          res.writeHead(401).end();
          return;
        }
        const { username, password } = JSON.parse(body) as { username: string; password?: string };
        if (req.url === "/check") res.writeHead(accounts.has(username) ? 409 : 200).end();
        else if (req.method === "DELETE") res.writeHead(accounts.delete(username) ? 204 : 404).end();
        else if (accounts.has(username) && accounts.get(username) !== password) res.writeHead(409).end();
        else {
          accounts.set(username, password ?? "");
          res.writeHead(201).end();
        }
      });
    });
    await new Promise<void>((resolve) => server!.listen(port, "127.0.0.1", () => resolve()));
    port = (server!.address() as AddressInfo).port;
  };
  await listen();
  return {
    accounts,
    url: () => `http://127.0.0.1:${port}`,
    listen,
    async stop() {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => server?.close(() => resolve()));
    },
  };
}
