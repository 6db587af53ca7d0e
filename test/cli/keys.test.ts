import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { withHarness } from "../helpers/harness.ts";
import { cli, createKey, databaseContains } from "../helpers/invites.ts";

// DESIGN.md §5: API keys, made and removed from the command line, stored only as a hash.

describe("API keys (gatehouse keys create|list|delete)", () => {
  test("keys create prints ID/SECRET once, and keys list prints ID<TAB>NAME without the secret", async () => {
    await withHarness({}, async (h) => {
      const created = await cli(h, "keys", "create", "My test key");
      assert.equal(created.code, 0, created.err.join("\n"));
      assert.equal(created.out.length, 1, "exactly one line: the key");
      const [id, secret] = created.out[0]!.split("/");
      assert.match(created.out[0]!, /^[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+$/);
      assert.ok(id && secret, "ID and SECRET are both there");
      assert.ok(Buffer.from(secret, "base64url").length >= 16, "the secret has at least 128 bits");

      const listed = await cli(h, "keys", "list");
      assert.equal(listed.code, 0);
      assert.deepEqual(listed.out, [`${id}\tMy test key`]);
      assert.ok(!listed.out.join("\n").includes(secret), "the secret is never listed");
      assert.ok(!listed.err.join("\n").includes(secret), "nor printed to stderr");

      // A second key: a different id and secret, both listed.
      const other = await createKey(h, "second");
      assert.notEqual(other.id, id);
      assert.notEqual(other.secret, secret);
      assert.deepEqual((await cli(h, "keys", "list")).out.sort(), [`${id}\tMy test key`, `${other.id}\tsecond`].sort());
    });
  });

  test("the database holds an API key's id but never its secret in the clear", async () => {
    await withHarness({}, async (h) => {
      const { id, secret } = await createKey(h, "stored key");
      assert.ok(databaseContains(h, id), "sanity: the key id is found in the database bytes");
      assert.ok(!databaseContains(h, secret), "the secret is stored only as a hash");
    });
  });

  test("keys delete ID removes the key; keys delete of an unknown id exits 1 with a message on stderr", async () => {
    await withHarness({}, async (h) => {
      const kept = await createKey(h, "kept");
      const gone = await createKey(h, "gone");
      const deleted = await cli(h, "keys", "delete", gone.id);
      assert.equal(deleted.code, 0, deleted.err.join("\n"));
      assert.deepEqual((await cli(h, "keys", "list")).out, [`${kept.id}\tkept`]);

      const unknown = await cli(h, "keys", "delete", "nope");
      assert.equal(unknown.code, 1);
      assert.deepEqual(unknown.out, []);
      assert.match(unknown.err.join("\n"), /nope/);
      assert.deepEqual((await cli(h, "keys", "list")).out, [`${kept.id}\tkept`]);
    });
  });
});
