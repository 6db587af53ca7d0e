import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MASK, maskSecrets, maskUrl } from "../../src/config-report.ts";
import { runGatehouse } from "../helpers/cli.ts";
import { createConfigDir } from "../helpers/service.ts";

// DESIGN §2: `check-config` shows where each value came from, with secrets masked (`secret`,
// tokens, passwords, and credentials inside URLs).

const SECRETS = {
  authToken: "file-auth-token-6f1d0c2a9b8e7d6c5b4a3f2e1d0c",
  storagePassword: "pg-pass-91d2e3",
  smtpPassword: "smtp-pass-0a9b8c",
  hookSecret: "webhook-secret-55aa66bb77cc",
  hookQueryToken: "hook-query-token-1234",
  xmppPassword: "xmpp-pass-77ee",
  ldapPassword: "ldap-pass-88ff",
  ejabberdPassword: "ejabberd-pass-99aa",
  httpTargetSecret: "http-target-secret-0011223344",
  redisPassword: "redis-pass-3c4d",
  secretFromFile: "secret-from-a-file-0123456789abcdef0123456789",
  envToken: "env-token-aabbccddeeff00112233445566778899",
} as const;

function lineOf(out: string[], key: string): { source: string; value: string } {
  const line = out.find((l) => new RegExp(`^\\s+${key.replace(/\./g, "\\.")}\\s`).test(l));
  assert.ok(line, `no line for ${key} in\n${out.join("\n")}`);
  const [, source, value] = /^\s+\S+\s+(.+?)\s{2,}(.*)$/.exec(line)!;
  return { source: source!, value: value! };
}

test("check-config shows each value's source (default, file, env, file via _FILE) and no secret in the clear", async () => {
  const cfg = createConfigDir({
    storage: `postgres://gatehouse:${SECRETS.storagePassword}@db.example/gatehouse`,
    register: { authTokens: [SECRETS.authToken], throttleSeconds: 30 },
    mail: { transport: `smtp://mailer:${SECRETS.smtpPassword}@mail.example:587` },
    events: { webhook: { url: `https://hooks.example/in?token=${SECRETS.hookQueryToken}&site=a`, secret: SECRETS.hookSecret } },
    accounts: {
      provision: [
        { type: "xmpp", service: "xmpp://chat.example:5222", domain: "chat.example", jid: "admin@chat.example", password: SECRETS.xmppPassword },
        { type: "ldap", url: "ldap://ldap.example", bindDN: "cn=admin,dc=example", bindPassword: SECRETS.ldapPassword, baseDN: "dc=example" },
        { type: "ejabberd", url: "http://127.0.0.1:5281/api", host: "chat.example", auth: { type: "basic", user: "admin@chat.example", password: SECRETS.ejabberdPassword } },
        { type: "http", url: "https://accounts.example/hook", secret: SECRETS.httpTargetSecret },
      ],
    },
  });
  try {
    const secretFile = join(cfg.dir, "secret");
    writeFileSync(secretFile, `${SECRETS.secretFromFile}\n`);
    const result = await runGatehouse(["check-config", "--config", cfg.configPath], {
      cwd: cfg.dir,
      env: {
        GATEHOUSE__SECRET_FILE: secretFile,
        GATEHOUSE__REDIS: `redis://:${SECRETS.redisPassword}@redis.example:6379`,
        GATEHOUSE__REGISTER__WHITELIST: '["192.0.2.0/24"]',
      },
    });
    assert.equal(result.code, 0, result.err.join("\n"));
    const text = [...result.out, ...result.err].join("\n");
    for (const [what, value] of Object.entries(SECRETS)) assert.ok(!text.includes(value), `the ${what} is printed:\n${text}`);

    assert.equal(result.out[0], `config ok: ${cfg.configPath}`);
    assert.deepEqual(lineOf(result.out, "listen.port"), { source: "file", value: "0" });
    assert.deepEqual(lineOf(result.out, "register.throttleSeconds"), { source: "file", value: "30" });
    assert.deepEqual(lineOf(result.out, "register.pendingTtlSeconds"), { source: "default", value: "86400" });
    assert.deepEqual(lineOf(result.out, "register.whitelist"), { source: "env GATEHOUSE__REGISTER__WHITELIST", value: '["192.0.2.0/24"]' });
    assert.deepEqual(lineOf(result.out, "secret"), { source: `file via GATEHOUSE__SECRET_FILE (${secretFile})`, value: `"${MASK}"` });
    assert.deepEqual(lineOf(result.out, "redis"), { source: "env GATEHOUSE__REDIS", value: `"redis://:${MASK}@redis.example:6379"` });
    assert.deepEqual(lineOf(result.out, "register.authTokens"), { source: "file", value: `["${MASK}"]` });
    assert.deepEqual(lineOf(result.out, "storage"), { source: "file", value: `"postgres://gatehouse:${MASK}@db.example/gatehouse"` });
    assert.deepEqual(lineOf(result.out, "mail.transport"), { source: "file", value: `"smtp://mailer:${MASK}@mail.example:587"` });
    assert.equal(lineOf(result.out, "events.webhook.secret").value, `"${MASK}"`);
    assert.match(lineOf(result.out, "events.webhook.url").value, /^"https:\/\/hooks\.example\/in\?token=\*{8}&site=a"$/);
    // Non-secret parts stay readable: an operator checks the host and the user.
    assert.match(lineOf(result.out, "accounts.provision").value, /"jid":"admin@chat\.example"/);
    assert.equal(lineOf(result.out, "metrics.listen").value, "(not set)");
  } finally {
    cfg.remove();
  }
});

test("a value from the environment outranks the file in check-config as it does in the service", async () => {
  const cfg = createConfigDir();
  try {
    const result = await runGatehouse(["check-config", "--config", cfg.configPath], {
      cwd: cfg.dir,
      env: { GATEHOUSE__REGISTER__AUTH_TOKENS: JSON.stringify([SECRETS.envToken]), GATEHOUSE__LISTEN__PORT: "9999" },
    });
    assert.equal(result.code, 0, result.err.join("\n"));
    assert.deepEqual(lineOf(result.out, "register.authTokens"), { source: "env GATEHOUSE__REGISTER__AUTH_TOKENS", value: `["${MASK}"]` });
    assert.deepEqual(lineOf(result.out, "listen.port"), { source: "env GATEHOUSE__LISTEN__PORT", value: "9999" });
    assert.ok(!result.out.join("\n").includes(SECRETS.envToken));
  } finally {
    cfg.remove();
  }
});

test("masking goes by key names and URL shapes, so keys added later are masked too", () => {
  assert.deepEqual(maskSecrets({ host: "mail.example", port: 587, auth: { user: "u", pass: "nodemailer-pass" } }), {
    host: "mail.example",
    port: 587,
    auth: { user: "u", pass: MASK },
  });
  assert.deepEqual(maskSecrets({ someFutureApiKey: "k", clientSecret: "s", includePassword: true, sessionTokens: ["a", "b"] }), {
    someFutureApiKey: MASK,
    clientSecret: MASK,
    includePassword: true,
    sessionTokens: [MASK, MASK],
  });
  assert.equal(maskUrl("postgresql://user:pw@h:5432/db?sslmode=require"), `postgresql://user:${MASK}@h:5432/db?sslmode=require`);
  assert.equal(maskUrl("rediss://lonetoken@redis.example"), `rediss://${MASK}@redis.example`);
  assert.equal(maskUrl("https://hooks.example/x?api_key=k1&x=1"), `https://hooks.example/x?api_key=${MASK}&x=1`);
  assert.equal(maskUrl("dir:./data/mail"), "dir:./data/mail");
  assert.equal(maskUrl("https://signup.example.org"), "https://signup.example.org");
});
