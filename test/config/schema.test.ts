import { test } from "node:test";
import assert from "node:assert/strict";
import { configForReload, parseConfig, restartOnlyChanges } from "../../src/config.ts";

const base = parseConfig({ register: { authTokens: ["t0ken"] }, metrics: { listen: { host: "127.0.0.1", port: 9100 } } });

test("a restart-only object written in another key order is no change", () => {
  const reordered = parseConfig({ register: { authTokens: ["t0ken"] }, metrics: { listen: { port: 9100, host: "127.0.0.1" } } });
  assert.deepEqual(restartOnlyChanges(base, reordered), []);
  const moved = parseConfig({ register: { authTokens: ["t0ken"] }, metrics: { listen: { port: 9200 } } });
  assert.deepEqual(restartOnlyChanges(base, moved), ["metrics.listen"]);
});

test("configForReload takes live keys from the file and keeps restart-only keys, set or unset, as they run", () => {
  const file = parseConfig({
    publicUrl: "https://signup.example.org",
    trustProxy: true,
    secret: "s".repeat(40),
    register: { authTokens: ["other"], basePath: "/signup/" },
    metrics: { enabled: false },
  });
  const { config, restart } = configForReload(base, file);
  assert.deepEqual(restart, ["secret", "register.basePath", "metrics.enabled", "metrics.listen"]);
  assert.equal(config.publicUrl, "https://signup.example.org");
  assert.equal(config.trustProxy, true);
  assert.deepEqual(config.register.authTokens, ["other"]);
  assert.equal(config.register.basePath, "/register_account/");
  assert.equal("secret" in config, false, "a secret the running config has not stays unset");
  assert.deepEqual(config.metrics, { enabled: true, listen: { host: "127.0.0.1", port: 9100 } });
  assert.equal(file.register.basePath, "/signup/", "the file's config is left alone");
});

test("configForReload names only what this edit changed and what is not already running", () => {
  const edited = parseConfig({ storage: "sqlite:/tmp/other.db", register: { authTokens: ["t0ken"] }, metrics: { listen: { host: "127.0.0.1", port: 9100 } } });
  const again = parseConfig({ storage: "sqlite:/tmp/other.db", redis: "redis://127.0.0.1:6379", register: { authTokens: ["t0ken"] }, metrics: { listen: { host: "127.0.0.1", port: 9100 } } });
  assert.deepEqual(configForReload(base, edited).restart, ["storage"]);
  assert.deepEqual(configForReload(base, again, edited).restart, ["redis"], "storage was named by the edit before");
  assert.deepEqual(configForReload(base, base, again).restart, [], "back to what runs");
});
