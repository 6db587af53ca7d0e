import { test } from "node:test";
import assert from "node:assert/strict";
import { T0, createAccount, storeContract } from "./fixture.ts";

storeContract("schema and service secret", (it, makeStore) => {
  test("migrating a second time changes nothing and keeps the rows", async () => {
    const fixture = await makeStore();
    try {
      const { store } = fixture;
      await createAccount(store, { username: "kept" });
      await store.migrate();
      await store.migrate();
      assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["kept"]);
      assert.equal(await store.findNameHolder("kept", T0), "account");
    } finally {
      await fixture.dispose();
    }
  });

  test("several instances migrating an empty database at once all succeed", async () => {
    const fixture = await makeStore({ migrated: false });
    try {
      const instances = [fixture.store, ...(await Promise.all([1, 2, 3, 4].map(() => fixture.connect())))];
      await Promise.all(instances.map((s) => s.migrate()));
      await createAccount(fixture.store, { username: "after-migrate" });
      assert.equal(await instances[4]!.findNameHolder("after-migrate", T0), "account");
    } finally {
      await fixture.dispose();
    }
  });

  it("loadSecret keeps the first secret it was given", async (store, fixture) => {
    assert.equal(await store.loadSecret("first"), "first");
    assert.equal(await store.loadSecret("second"), "first");
    const other = await fixture.connect();
    assert.equal(await other.loadSecret("third"), "first");
  });

  test("instances loading the secret at once all end up with the same one", async () => {
    const fixture = await makeStore();
    try {
      const instances = [fixture.store, await fixture.connect(), await fixture.connect()];
      const secrets = await Promise.all(instances.flatMap((s, i) => [s.loadSecret(`a${i}`), s.loadSecret(`b${i}`)]));
      assert.equal(new Set(secrets).size, 1);
    } finally {
      await fixture.dispose();
    }
  });

  it("ping answers on an open store", async (store) => {
    await store.ping();
  });

  it("findStoredSecret is null until one is stored; deleteStoredSecret removes it for every instance", async (store, fixture) => {
    assert.equal(await store.findStoredSecret(), null);
    await store.loadSecret("kept-secret");
    const other = await fixture.connect();
    assert.equal(await other.findStoredSecret(), "kept-secret");
    await store.deleteStoredSecret();
    assert.equal(await other.findStoredSecret(), null);
    assert.equal(await store.findStoredSecret(), null);
  });

  it("probeWrite succeeds on a writable store, again and again, and changes no other row", async (store) => {
    await store.loadSecret("probe-secret");
    await createAccount(store, { username: "untouched" });
    await store.probeWrite(T0);
    await store.probeWrite(T0 + 1);
    assert.equal(await store.findStoredSecret(), "probe-secret");
    assert.deepEqual((await store.listAccounts()).map((a) => a.username), ["untouched"]);
    assert.equal(await store.outboxDepth(), 0);
  });
});
