import { test } from "node:test";
import assert from "node:assert/strict";
import { cli, createCliHarness } from "../helpers/cli.ts";
import { postRegistration, registration } from "../helpers/harness.ts";

export const PENDING_HEADER = "NAME\tIP\tCREATED\tEXPIRES\tMAIL\tSTATE\tREASON";

/** NAME, IP, CREATED, EXPIRES and the mail status. */
function columns(line: string): string[] {
  return line.split("\t").slice(0, 5);
}

test("pending list shows name, ip and the mail status", async () => {
  const h = await createCliHarness();
  try {
    const res = await postRegistration(h, registration({ username: "Eve", ip: "198.51.100.77" }));
    assert.equal(res.status, 200, res.text);
    const created = new Date(h.clock.now()).toISOString();
    const expires = new Date(h.clock.now() + h.config.register.pendingTtlSeconds * 1000).toISOString();

    const queued = await cli(h, "pending", "list");
    assert.equal(queued.code, 0, queued.err.join("\n"));
    assert.equal(queued.out[0], PENDING_HEADER);
    assert.deepEqual(queued.out.slice(1).map(columns), [["eve", "198.51.100.77", created, expires, "queued"]]);

    await h.outbox.drain();
    const sent = await cli(h, "pending", "list");
    assert.deepEqual(sent.out.slice(1).map(columns), [["eve", "198.51.100.77", created, expires, "sent"]]);

    // Verified, it is an account and no longer pending.
    assert.equal((await h.http.post(`/register_account/verify/${res.text}`)).status, 200);
    assert.deepEqual((await cli(h, "pending", "list")).out, [PENDING_HEADER]);
  } finally {
    await h.close();
  }
});
