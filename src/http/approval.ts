import Router from "@koa/router";
import type { AppContext } from "../context.ts";
import { decideApproval, findApproval, MAX_REASON_LENGTH, type ApprovalDeps } from "../domain/approval.ts";
import { AppError } from "../errors.ts";
import { readForm } from "./body.ts";
import { sendPage } from "./respond.ts";

export type ApprovalRouteDeps = ApprovalDeps & Pick<AppContext, "templates" | "metrics">;

const DECISIONS = ["approve", "reject"] as const;

/**
 * The moderator mail's links (DESIGN §11): GET shows the waiting registration and one button and
 * changes nothing (mail scanners prefetch links); POST decides, once.
 */
export function approvalRouter(deps: ApprovalRouteDeps): Router {
  const base = `${deps.config.register.basePath}approval/`;
  const router = new Router();
  router.use((ctx, next) => {
    ctx.state.page = true;
    return next();
  });

  for (const decision of DECISIONS) {
    const path = `${base}:token/${decision}`;
    router.get(path, async (ctx) => {
      const token = ctx.params["token"] ?? "";
      const record = await findApproval(deps, token);
      sendPage(ctx, deps.templates, "approval-confirm", {
        action: `${base}${encodeURIComponent(token)}/${decision}`,
        approve: decision === "approve",
        username: record.username,
        reason: record.reason,
        invitedBy: record.invitedBy,
        createdAt: record.createdAt,
        expiresAt: record.expiresAt,
        maxReasonLength: MAX_REASON_LENGTH,
      });
    });

    router.post(path, async (ctx) => {
      const form = await readForm(ctx);
      const token = ctx.params["token"] ?? "";
      const result = await decideApproval(deps, { token }, decision === "approve" ? { decision } : { decision, reason: form["reason"] });
      if (!result) throw new AppError("APPROVAL_NOT_FOUND", "this approval link is unknown, has expired or was already used");
      deps.metrics.approvals.inc({ outcome: decision === "approve" ? "approved" : "rejected" });
      const username = result.decision === "approve" ? result.account.username : result.record.username;
      sendPage(ctx, deps.templates, "approval-done", { username, approve: result.decision === "approve" });
    });
  }
  return router;
}
