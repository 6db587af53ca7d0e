import Router from "@koa/router";
import type { AppContext } from "../context.ts";
import { isStoreUnavailable } from "../errors.ts";

export function opsRouter(deps: Pick<AppContext, "store" | "log" | "config" | "metrics">): Router {
  const router = new Router();
  // On the main listener unless turned off or given a listener of its own (see main.ts).
  if (deps.config.metrics.enabled && !deps.config.metrics.listen) {
    router.get("/metrics", async (ctx) => {
      const { contentType, body } = await deps.metrics.render();
      ctx.set("Cache-Control", "no-store");
      ctx.type = contentType;
      ctx.body = body;
    });
  }
  router.get("/healthz", async (ctx) => {
    ctx.set("Cache-Control", "no-store");
    try {
      await deps.store.ping();
      ctx.body = { status: "ok" };
    } catch (err) {
      deps.log[isStoreUnavailable(err) ? "warn" : "error"]({ err: String(err) }, "health check: store unreachable");
      ctx.status = 503;
      ctx.body = { status: "unavailable", reason: "store unreachable" };
    }
  });
  return router;
}
