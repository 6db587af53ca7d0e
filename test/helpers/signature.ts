import { createHmac, timingSafeEqual } from "node:crypto";

export const TOLERANCE_SECONDS = 300;

/**
 * The check a receiver of gatehouse's signed requests (events, the http account target) runs, the way
 * the README tells operators to: the signature over "t.body" with the shared secret, and a fresh timestamp.
 */
export function verifySignature(secret: string, header: string | undefined, body: string, nowMs: number): "ok" | "bad-signature" | "stale" {
  const parts = new Map((header ?? "").split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
  const t = parts.get("t") ?? "";
  const v1 = parts.get("v1") ?? "";
  if (!/^\d+$/.test(t) || !/^[0-9a-f]{64}$/.test(v1)) return "bad-signature";
  const expected = createHmac("sha256", secret).update(`${t}.${body}`, "utf8").digest();
  if (!timingSafeEqual(expected, Buffer.from(v1, "hex"))) return "bad-signature";
  if (Math.abs(nowMs / 1000 - Number(t)) > TOLERANCE_SECONDS) return "stale";
  return "ok";
}
