import { test } from "node:test";
import assert from "node:assert/strict";
import { createHarness, postRegistration, registration } from "../helpers/harness.ts";

test("a registration answers 200 with a token that the confirm page accepts", async () => {
  const h = await createHarness();
  try {
    const res = await postRegistration(h, registration({ username: "Carol" }));
    assert.equal(res.status, 200);
    const token = res.text;
    const page = await h.http.get(`/register_account/verify/${token}`);
    assert.equal(page.status, 200);
    assert.match(page.text, /carol/);
    const done = await h.http.post(`/register_account/verify/${token}`).set("Accept", "application/json");
    assert.deepEqual(done.body, { username: "carol", alreadyActive: false });
  } finally {
    await h.close();
  }
});
