import { test } from "node:test";
import assert from "node:assert/strict";
import { cryptoRandom, signatureHeader } from "../../src/domain/secrets.ts";
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

test("cryptoRandom hands out each drawn byte once: the sizes asked for, none repeated across its 4 KiB blocks", () => {
  const seen = new Set<string>();
  // 30,000 bytes in all: several blocks, with draws that do not divide a block evenly.
  for (let i = 0; i < 1000; i++) {
    for (const size of [5, 24, 1]) {
      const drawn = cryptoRandom(size);
      assert.equal(drawn.length, size);
      if (size > 1) {
        const hex = drawn.toString("hex");
        assert.ok(!seen.has(hex), `draw ${i} of ${size} bytes repeats an earlier one`);
        seen.add(hex);
      }
    }
  }
  // Larger than a quarter block: straight from randomBytes.
  assert.equal(cryptoRandom(4000).length, 4000);
  assert.notDeepEqual(cryptoRandom(32), cryptoRandom(32));
});
