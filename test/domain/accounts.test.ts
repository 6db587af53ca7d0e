import { test } from "node:test";
import assert from "node:assert/strict";
import { AppError } from "../../src/errors.ts";
import { checkPassword, prepareRequestedName, refuseReservedName, reservedSkeletons } from "../../src/domain/accounts.ts";

function refusalCode(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof AppError, `threw ${String(err)}`);
    return err.code;
  }
  assert.fail("was not refused");
}

test("a requested name is prepared (case folded) or refused as USERNAME_INVALID with the reason", () => {
  assert.equal(prepareRequestedName("Juliet"), "juliet");
  assert.throws(() => prepareRequestedName("juliet@example.com"), { code: "USERNAME_INVALID", message: /forbidden character '@'/ });
});

test("a reserved name is refused in any case and by its look-alikes; other names pass", () => {
  const deps = { rules: { reservedSkeletons: reservedSkeletons(["Admin"]) } };
  for (const name of ["admin", "\u0430dmin", "adm\u0131n"]) {
    assert.equal(refusalCode(() => refuseReservedName(deps, prepareRequestedName(name))), "USERNAME_RESERVED", name);
  }
  assert.doesNotThrow(() => refuseReservedName(deps, "juliet"));
});

test("the password rule counts characters as a person sees them, not UTF-16 units", () => {
  const deps = { config: { accounts: { minPasswordLength: 8, reservedUsernames: [] } } };
  assert.doesNotThrow(() => checkPassword(deps, "\u{1F511}".repeat(8)));
  assert.equal(refusalCode(() => checkPassword(deps, "\u{1F511}".repeat(7))), "PASSWORD_TOO_SHORT");
});
