import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";

const REQUEST_TIMEOUT_MS = 30_000;
const HEADERS_TIMEOUT_MS = 20_000;

/**
 * The main listener. Slow clients cannot hold a connection open forever with a trickle of body
 * bytes; Node checks the timeout every connectionsCheckingInterval (30 s by default, which let a
 * 30 s limit run to 60).
 */
export function createHttpServer(handler: RequestListener, requestTimeout = REQUEST_TIMEOUT_MS): Server {
  return createServer(
    { requestTimeout, headersTimeout: Math.min(HEADERS_TIMEOUT_MS, requestTimeout), connectionsCheckingInterval: Math.min(1000, requestTimeout) },
    handler,
  );
}

export function addressUrl(server: Server): string {
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/**
 * Resolves once every listener listens; rejects with the first failure (e.g. EADDRINUSE). Call it
 * right after listen(): both outcomes are awaited from then on, so neither event can be missed.
 */
export async function whenListening(listeners: (Server | null)[]): Promise<void> {
  await Promise.all(
    listeners.map((listener) =>
      listener
        ? new Promise<void>((resolve, reject) => {
            listener.once("listening", resolve);
            listener.once("error", reject);
          })
        : undefined,
    ),
  );
}

/** Lets in-flight requests on the main listener finish; the metrics listener just stops. */
export async function closeListeners(server: Server, metricsServer: Server | null): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
  metricsServer?.close();
  metricsServer?.closeAllConnections();
}
