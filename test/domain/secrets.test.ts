import { test } from "node:test";
import assert from "node:assert/strict";
import { signatureHeader } from "../../src/domain/secrets.ts";
import { verifySignature } from "../helpers/signature.ts";

test("signatureHeader gives t=SECONDS,v1=HMAC that a receiver checks as the README says", () => {
  const now = 1_700_000_123_456;
  const header = signatureHeader("shared secret", '{"type":"user-registered"}', now);
  assert.match(header, /^t=1700000123,v1=[0-9a-f]{64}$/);
  assert.equal(verifySignature("shared secret", header, '{"type":"user-registered"}', now), "ok");
  assert.equal(verifySignature("shared secret", header, '{"type":"invite-accepted"}', now), "bad-signature");
  assert.equal(verifySignature("other secret", header, '{"type":"user-registered"}', now), "bad-signature");
  assert.equal(verifySignature("shared secret", header, '{"type":"user-registered"}', now + 301_000), "stale");
});
