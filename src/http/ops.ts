import Router from "@koa/router";
import type { AppContext } from "../context.ts";

export function opsRouter(deps: Pick<AppContext, "store" | "log">): Router {
  const router = new Router();
  router.get("/healthz", async (ctx) => {
    ctx.set("Cache-Control", "no-store");
    try {
      await deps.store.ping();
      ctx.body = { status: "ok" };
    } catch (err) {
      deps.log.error({ err: String(err) }, "health check: store unreachable");
      ctx.status = 503;
      ctx.body = { status: "unavailable", reason: "store unreachable" };
    }
  });
  return router;
}
