import assert from "node:assert/strict";
import { T0, storeContract } from "./fixture.ts";

storeContract("api keys", (it) => {
  it("api keys can be inserted, found, listed in creation order and deleted", async (store) => {
    const b = { id: "kb", name: "second", secretHash: "hash-b", createdAt: T0 + 1 };
    const a = { id: "ka", name: "", secretHash: "hash-a", createdAt: T0 };
    await store.insertApiKey(b);
    await store.insertApiKey(a);
    assert.deepEqual(await store.findApiKey("kb"), b);
    assert.equal(await store.findApiKey("nope"), null);
    assert.deepEqual(await store.listApiKeys(), [a, b]);
    assert.equal(await store.deleteApiKey("ka"), true);
    assert.equal(await store.deleteApiKey("ka"), false);
    assert.deepEqual(await store.listApiKeys(), [b]);
  });

  it("an api key id cannot be inserted twice", async (store) => {
    await store.insertApiKey({ id: "k", name: "", secretHash: "h", createdAt: T0 });
    await assert.rejects(store.insertApiKey({ id: "k", name: "", secretHash: "h2", createdAt: T0 }));
    assert.equal((await store.findApiKey("k"))?.secretHash, "h");
  });
});
