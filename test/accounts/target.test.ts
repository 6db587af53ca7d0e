import assert from "node:assert/strict";
import { test } from "node:test";
import { describeError, scrubReason } from "../../src/accounts/target.ts";

test("a reason loses the secrets it is told of, every mail address and URL credentials, and stays short", () => {
  const reason = scrubReason(
    "refused s3cret pass for alice@example.org at https://admin:hunter2@ldap.example.org/ (then s3cret pass again)",
    ["s3cret pass", undefined],
  );
  assert.equal(reason, "refused [redacted] for [address] at https://[redacted]@ldap.example.org/ (then [redacted] again)");
  assert.equal(scrubReason("x".repeat(1000)).length, 301);
});

test("a fetch failure is described by the system error hidden in its cause", () => {
  const err = new TypeError("fetch failed", { cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }) });
  assert.equal(describeError(err), "connect ECONNREFUSED 127.0.0.1:1");
});
