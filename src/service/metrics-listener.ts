import { createServer, type Server } from "node:http";
import { AggregatorRegistry } from "prom-client";
import type { Config } from "../config.ts";
import type { Metrics } from "../metrics.ts";

/** A listener that answers only GET /metrics. */
export function serveMetrics(listen: { host: string; port: number }, render: () => Promise<{ contentType: string; body: string }>): Server {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    render().then(
      ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(body),
      () => res.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable"),
    );
  });
  return server.listen(listen.port, listen.host);
}

/**
 * Metrics may get a listener of their own, e.g. on an address only the monitoring network
 * reaches. A worker of `serve --workers N` gets none: the primary owns `metrics.listen` and
 * serves the sum over all workers.
 */
export function startMetricsListener(config: Config, metrics: Metrics, clusterWorker: boolean): Server | null {
  if (clusterWorker) {
    // prom-client answers the primary's metrics requests once an AggregatorRegistry exists in the worker.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([metrics.registry]);
    return null;
  }
  return config.metrics.enabled && config.metrics.listen ? serveMetrics(config.metrics.listen, () => metrics.render()) : null;
}
