import Router from "@koa/router";
import type { AppContext } from "../context.ts";
import { STORAGE_FULL_RETRY_SECONDS } from "../domain/write-health.ts";
import { isStorageFull } from "../store/errors.ts";
import { isStoreUnavailable } from "../errors.ts";
import { openApiJson } from "./openapi.ts";

export function opsRouter(deps: Pick<AppContext, "store" | "log" | "config" | "metrics" | "clock" | "writeHealth">): Router {
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
  const description = openApiJson();
  // Made now, not on the first request: a description that cannot be made fails the start.
  description(deps.config);
  router.get("/openapi.json", (ctx) => {
    ctx.type = "application/json; charset=utf-8";
    ctx.body = description(deps.config);
  });
  router.get("/healthz", async (ctx) => {
    ctx.set("Cache-Control", "no-store");
    const unavailable = (reason: string, err: unknown) => {
      deps.log[isStoreUnavailable(err) ? "warn" : "error"]({ err: String(err) }, `health check: ${reason}`);
      ctx.status = 503;
      ctx.set("Retry-After", String(STORAGE_FULL_RETRY_SECONDS));
      ctx.body = { status: "unavailable", reason };
    };
    try {
      await deps.store.ping();
    } catch (err) {
      return unavailable("store unreachable", err);
    }
    // Reading is not enough: a full disk still answers SELECT 1 while every registration fails.
    try {
      await deps.store.probeWrite(deps.clock.now());
    } catch (err) {
      deps.writeHealth.noteFailure(err);
      return unavailable(isStorageFull(err) ? "store is full" : "store cannot be written", err);
    }
    deps.writeHealth.noteWritable();
    ctx.body = { status: "ok" };
  });
  return router;
}
