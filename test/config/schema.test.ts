import { test } from "node:test";
import assert from "node:assert/strict";
import {
  childrenOf,
  CONFIG_SCHEMA,
  ConfigError,
  configForReload,
  exampleOf,
  parseConfig,
  restartOnlyChanges,
  type SchemaNode,
} from "../../src/config.ts";

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

// Every config error names the key path and shows a right value, taken from the schema's
// `examples` (or default): walked over the whole schema, so a key added later is held to it too.

function leaves(node: SchemaNode, path: string[] = []): { path: string[]; node: SchemaNode }[] {
  return childrenOf(node).flatMap(([key, child]) =>
    child.properties ? leaves(child, [...path, key]) : [{ path: [...path, key], node: child }]);
}

/** A value of the wrong JSON type for `node`. */
function wrongValue(node: SchemaNode): unknown {
  const types = node.type ? [node.type] : (node.anyOf ?? []).map((branch) => branch.type);
  if (types.includes("object") && types.includes("string")) return 5;
  if (types.includes("string")) return 12345;
  if (types.includes("integer") || types.includes("number")) return "not-a-number";
  if (types.includes("boolean")) return "yes";
  return "not-an-array-or-object";
}

test("a wrong value at any key of the schema is refused naming its path and showing an example of a right one", () => {
  const checked: string[] = [];
  for (const { path, node } of leaves(CONFIG_SCHEMA as unknown as SchemaNode)) {
    const raw: Record<string, unknown> = { register: { authTokens: ["t0ken"] } };
    let at = raw;
    for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[path[path.length - 1]!] = wrongValue(node);
    let problems: string[] = [];
    try {
      parseConfig(raw, "test.json");
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      problems = err.problems;
    }
    const dotted = path.join(".");
    const own = problems.find((p) => p.startsWith(`${dotted}:`) || p.startsWith(`${dotted}.`));
    assert.ok(own, `${dotted}: ${JSON.stringify(wrongValue(node))} refused with ${JSON.stringify(problems)}`);
    assert.match(own, /, e\.g\. \S/, `${dotted}: no example in ${own}`);
    checked.push(dotted);
  }
  assert.ok(checked.includes("register.authTokens") && checked.includes("mail.transport") && checked.includes("listen.port"), checked.join(", "));
});

test("every key of the schema has an example for its error messages (schema `examples`, else a default)", () => {
  const missing: string[] = [];
  const walk = (node: SchemaNode, path: string[]) => {
    for (const [key, child] of childrenOf(node)) {
      if (exampleOf(child) === undefined) missing.push([...path, key].join("."));
      for (const shape of [child, child.items, ...(child.anyOf ?? []), ...(child.items?.anyOf ?? [])]) {
        if (shape?.properties) walk(shape, [...path, key]);
      }
    }
  };
  walk(CONFIG_SCHEMA as unknown as SchemaNode, []);
  assert.deepEqual(missing, []);
});

test("a bad mail.transport names the forms it takes", () => {
  for (const transport of ["smtp:/mail.example", "mail.example:25", 25, ["smtp://mail.example"]]) {
    assert.throws(() => parseConfig({ register: { authTokens: ["t0ken"] }, mail: { transport } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.problems, [
        'mail.transport: must be an smtp:// or smtps:// URL, dir:PATH, or nodemailer options {host, port, …}, e.g. "smtp://gatehouse:PASSWORD@mail.example.org:587"',
      ]);
      return true;
    });
  }
});
