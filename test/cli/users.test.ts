import { test } from "node:test";
import assert from "node:assert/strict";
import { cli, createCliHarness } from "../helpers/cli.ts";
import { postRegistration, registerAndVerify, registration } from "../helpers/harness.ts";

test("users list prints a header, then NAME, CREATED, MAIL and INVITED BY separated by tabs, sorted by name", async () => {
  const h = await createCliHarness();
  try {
    const created = new Date(h.clock.now()).toISOString();
    await registerAndVerify(h, { username: "Carol" });
    await registerAndVerify(h, { username: "bob" });
    const { code, out, err } = await cli(h, "users", "list");
    assert.equal(code, 0, err.join("\n"));
    assert.equal(out[0], "NAME\tCREATED\tMAIL\tINVITED BY\tACCOUNT SERVERS");
    // A registered account has no inviter: "-".
    assert.deepEqual(out.slice(1).map((line) => line.split("\t")), [["bob", created, "mail", "-"], ["carol", created, "mail", "-"]]);
  } finally {
    await h.close();
  }
});

test("users delete removes the account and frees its mail address for a new registration", async () => {
  const h = await createCliHarness();
  try {
    await registerAndVerify(h, { username: "dora", mail: "dora.cli@example.org" });
    const taken = await postRegistration(h, registration({ username: "dora2", mail: "dora.cli@example.org" }));
    assert.equal(taken.status, 409, "the mail belongs to dora");

    const { code, out, err } = await cli(h, "users", "delete", "Dora");
    assert.equal(code, 0, err.join("\n"));
    assert.deepEqual(out, ["deleted dora"]);
    assert.deepEqual((await cli(h, "users", "list")).out, []);

    const again = await postRegistration(h, registration({ username: "dora2", mail: "dora.cli@example.org" }));
    assert.equal(again.status, 200, again.text);
  } finally {
    await h.close();
  }
});

test("users delete of an unknown name exits 1 with a message on stderr", async () => {
  const h = await createCliHarness();
  try {
    const { code, out, err } = await cli(h, "users", "delete", "nobody");
    assert.equal(code, 1);
    assert.deepEqual(out, []);
    assert.equal(err.length, 1);
    assert.match(err[0]!, /^gatehouse: .*nobody/);
  } finally {
    await h.close();
  }
});
