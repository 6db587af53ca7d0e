import { readFileSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { Type, type Static } from "@sinclair/typebox";
import { Ajv, type ErrorObject } from "ajv";
import ipaddr from "ipaddr.js";

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const EXAMPLE_CONFIG = resolve(PACKAGE_ROOT, "config.example.json");

// --- the schema: the one place a key is defined -----------------------------------------------
//
// Each key's type, default and check are written here once; the Config type is derived from it.
// A key with `restart: "why"` is read once at start-up: a reload reports its change as needing a
// restart and keeps the running value (see configForReload). Every other key is live: whoever reads
// it takes ctx.config at the moment of use, which a reload replaces. On an object, the mark covers
// every key under it. A key with a default is listed as required: ajv fills the default in first,
// so it never is missing from a loaded config, and the type says so.

const strict = { additionalProperties: false } as const;
const ipOrCidr = Type.String({ minLength: 1, format: "ip-or-cidr" });

const targetCommon = {
  /** Names the target in jobs, logs and `users list`; defaults to its type and host. Unique. */
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\t\\n]+$" })),
  /** Default 3000 (DEFAULT_TIMEOUT_MS); ajv fills no defaults inside a union's branches. */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000 })),
};
const PROVISION_TARGET = Type.Union([
  Type.Object({
    type: Type.Literal("ejabberd"),
    ...targetCommon,
    url: Type.String({ format: "http-url" }),
    host: Type.String({ minLength: 1 }),
    auth: Type.Optional(Type.Union([
      Type.Object({ type: Type.Literal("basic"), user: Type.String({ minLength: 1 }), password: Type.String({ minLength: 1 }) }, strict),
      Type.Object({ type: Type.Literal("bearer"), token: Type.String({ minLength: 1 }) }, strict),
    ])),
  }, strict),
  Type.Object({
    type: Type.Literal("xmpp"),
    ...targetCommon,
    service: Type.String({ pattern: "^xmpps?://[^/]+$" }),
    domain: Type.String({ minLength: 1 }),
    jid: Type.String({ pattern: "^[^@/\\s]+@[^@/\\s]+$" }),
    password: Type.String({ minLength: 1 }),
    tls: Type.Optional(Type.Object({ ca: Type.Optional(Type.String()), rejectUnauthorized: Type.Optional(Type.Boolean()) }, strict)),
  }, strict),
  Type.Object({
    type: Type.Literal("ldap"),
    ...targetCommon,
    url: Type.String({ pattern: "^ldaps?://.+" }),
    bindDN: Type.String({ minLength: 1 }),
    bindPassword: Type.String({ minLength: 1 }),
    baseDN: Type.String({ minLength: 1 }),
    objectClasses: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
    attributes: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String(), Type.Array(Type.String())]))),
    includeMail: Type.Optional(Type.Boolean()),
  }, strict),
  Type.Object({
    type: Type.Literal("http"),
    ...targetCommon,
    url: Type.String({ format: "http-url" }),
    secret: Type.String({ minLength: 16 }),
    checkUrl: Type.Optional(Type.String({ format: "http-url" })),
    includePassword: Type.Optional(Type.Boolean()),
    includeMail: Type.Optional(Type.Boolean()),
  }, strict),
]);

export type ProvisionTargetConfig = Static<typeof PROVISION_TARGET>;

export const CONFIG_SCHEMA = Type.Object({
  $schema: Type.Optional(Type.String()),
  listen: Type.Object({
    host: Type.String({ minLength: 1, default: "127.0.0.1" }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  }, { ...strict, default: {}, restart: "the listener is bound at start-up" }),
  publicUrl: Type.String({ format: "http-url", default: "http://localhost:8080" }),
  // Koa reads app.proxy per request, and createApp makes that a look-up of this key.
  trustProxy: Type.Boolean({ default: false }),
  storage: Type.String({ pattern: "^(sqlite:.+|postgres(ql)?://.+)$", default: "sqlite:./data/gatehouse.db", restart: "the store is opened at start-up" }),
  redis: Type.Optional(Type.String({ pattern: "^rediss?://", restart: "the Redis connection is made at start-up" })),
  secret: Type.Optional(Type.String({ minLength: 32, restart: "mail hashes and sealed payloads are keyed at start-up" })),
  register: Type.Object({
    basePath: Type.String({ pattern: "^/([^/?#]+/)*$", default: "/register_account/", restart: "the routes are mounted at start-up" }),
    secure: Type.Boolean({ default: true }),
    authTokens: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
    throttleSeconds: Type.Integer({ minimum: 0, default: 0 }),
    blacklist: Type.Array(ipOrCidr, { default: [] }),
    whitelist: Type.Array(ipOrCidr, { default: [] }),
    filteredMails: Type.Array(Type.String({ format: "regex" }), { default: [] }),
    pendingTtlSeconds: Type.Integer({ minimum: 1, default: 86400 }),
    sendMail: Type.Boolean({ default: true }),
    // New verification links a pending registration may be sent after the first (DESIGN §11).
    resendLimit: Type.Integer({ minimum: 0, maximum: 100, default: 3 }),
    blockDisposable: Type.Boolean({ default: false }),
    // One subscriber usually holds a whole /64 (often a /56 or /48): rate limits count by network, not by address.
    ipv6Prefix: Type.Integer({ minimum: 32, maximum: 128, default: 64 }),
  }, strict),
  mail: Type.Object({
    from: Type.String({ minLength: 3, default: "gatehouse <noreply@localhost>" }),
    transport: Type.Union([
      Type.String({ pattern: "^(dir:.+|smtps?://.+)$" }),
      Type.Record(Type.String(), Type.Unknown()),
    ], { default: "dir:./data/mail" }),
  }, { ...strict, default: {} }),
  invites: Type.Object({
    ttlSeconds: Type.Integer({ minimum: 1, default: 604800 }),
    apiPath: Type.String({ pattern: "^/[^?#]*$", default: "/invites_api", restart: "the route is mounted at start-up" }),
  }, { ...strict, default: {} }),
  accounts: Type.Object({
    // The account servers every new account is made on (DESIGN §9). Live: a reload builds new
    // clients and closes the old ones; queued jobs name their target, so a renamed or removed
    // target's jobs fail with that reason (`users list`) instead of going elsewhere.
    provision: Type.Array(PROVISION_TARGET, { default: [] }),
    provisionWaitMs: Type.Integer({ minimum: 0, maximum: 60_000, default: 5000 }),
    minPasswordLength: Type.Integer({ minimum: 1, maximum: 1024, default: 8 }),
    reservedUsernames: Type.Array(Type.String({ minLength: 1 }), {
      default: ["admin", "administrator", "root", "postmaster", "hostmaster", "webmaster", "abuse", "security", "support", "noc"],
    }),
  }, { ...strict, default: {} }),
  metrics: Type.Object({
    enabled: Type.Boolean({ default: true, restart: "the /metrics route or listener is set up at start-up" }),
    listen: Type.Optional(Type.Object({
      host: Type.String({ minLength: 1, default: "127.0.0.1" }),
      port: Type.Integer({ minimum: 0, maximum: 65535 }),
    }, { ...strict, restart: "the metrics listener is bound at start-up" })),
  }, { ...strict, default: {} }),
  // ALTCHA proof of work on gatehouse's own public forms (DESIGN §11); every key is live.
  antibot: Type.Object({
    proofOfWork: Type.Union([Type.Literal("off"), Type.Literal("always"), Type.Literal("auto")], { default: "off" }),
    // The largest counter a browser may have to reach (SHA-256 tries); it is drawn between half of it and it.
    complexity: Type.Integer({ minimum: 1000, maximum: 10_000_000, default: 100_000 }),
    // "auto": submissions of the forms per address (IPv6 by register.ipv6Prefix) and in all, per window,
    // past which the proof of work is asked for, from that address or from everyone, for holdSeconds.
    auto: Type.Object({
      perAddress: Type.Integer({ minimum: 1, default: 10 }),
      perForm: Type.Integer({ minimum: 1, default: 200 }),
      windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 60 }),
      holdSeconds: Type.Integer({ minimum: 1, maximum: 604_800, default: 3600 }),
    }, { ...strict, default: {} }),
  }, { ...strict, default: {} }),
  events: Type.Optional(Type.Object({
    webhook: Type.Optional(Type.Object({
      url: Type.String({ format: "http-url" }),
      secret: Type.String({ minLength: 16 }),
    }, strict)),
  }, strict)),
  // What pages and mails show (DESIGN §10). The name falls back to publicUrl's host only when unset.
  site: Type.Object({
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\t\\n\\r]+$" })),
    logoUrl: Type.Optional(Type.String({ format: "http-url" })),
    // A hex colour only: it is written into the pages' inline style.
    accentColor: Type.String({ pattern: "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", default: "#2453a6" }),
    homeUrl: Type.Optional(Type.String({ format: "http-url" })),
    signInUrl: Type.Optional(Type.String({ format: "http-url" })),
    supportUrl: Type.Optional(Type.String({ format: "link-url" })),
  }, { ...strict, default: {} }),
  templates: Type.Object({
    // Files here replace the built-in ones of the same relative name; read at start-up and on each reload.
    dir: Type.Optional(Type.String({ minLength: 1 })),
  }, { ...strict, default: {} }),
  // First is the default; each needs a catalogue (locales/<tag>.json, built in or in templates.dir).
  languages: Type.Array(Type.String({ format: "language-tag" }), { minItems: 1, uniqueItems: true, default: ["en"] }),
}, strict);

export type Config = Static<typeof CONFIG_SCHEMA>;

function isIpOrCidr(value: string): boolean {
  try {
    if (value.includes("/")) ipaddr.parseCIDR(value);
    else ipaddr.parse(value);
    return ipaddr.isValid(value.split("/")[0] ?? "");
  } catch {
    return false;
  }
}

function isRegex(value: string): boolean {
  try {
    new RegExp(value, "i");
    return true;
  } catch {
    return false;
  }
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

function isLinkUrl(value: string): boolean {
  if (isHttpUrl(value)) return true;
  return /^mailto:[^\s]+@[^\s]+$/i.test(value);
}

/** A well-formed BCP 47 tag, as Intl reads it (en, de-CH, zh-Hant-TW). */
export function isLanguageTag(value: string): boolean {
  if (value.length > 35 || !/^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/.test(value)) return false;
  try {
    return Intl.getCanonicalLocales(value).length === 1;
  } catch {
    return false;
  }
}

// verbose: errors carry the offending value, which describe() quotes for format errors.
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true, formats: {
  "ip-or-cidr": isIpOrCidr,
  regex: isRegex,
  "http-url": isHttpUrl,
  "link-url": isLinkUrl,
  "language-tag": isLanguageTag,
} });
// An annotation only (see the schema's head): strict mode refuses keywords it was not told of.
ajv.addKeyword({ keyword: "restart", schemaType: "string" });
const validateSchema = ajv.compile<Config>(CONFIG_SCHEMA);

export class ConfigError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`invalid configuration in ${file}:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

// --- environment overrides (DESIGN §2) ---------------------------------------------------------

/** The environment as config reads it; process.env by default, a plain object in tests. */
export type Environment = Record<string, string | undefined>;

const ENV_PREFIX = "GATEHOUSE__";

interface SchemaNode {
  type?: string;
  anyOf?: readonly SchemaNode[];
  properties?: Record<string, SchemaNode>;
  pattern?: string;
  restart?: string;
}

const SCHEMA_ROOT = CONFIG_SCHEMA as unknown as SchemaNode;

/** The keys of an object node that are config keys ($schema only names the file's schema). */
function childrenOf(node: SchemaNode): [string, SchemaNode][] {
  return Object.entries(node.properties ?? {}).filter(([key]) => key !== "$schema");
}

/** One config key set from the environment. */
export interface EnvironmentOverride {
  /** The variable as written, e.g. GATEHOUSE__REGISTER__AUTH_TOKENS_FILE. */
  variable: string;
  /** The key path, e.g. ["register", "authTokens"]. */
  path: string[];
  /** Whether the variable names a file holding the value. */
  fromFile: boolean;
}

const screaming = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();

/** The child of an object node whose SCREAMING_SNAKE name is `segment`. */
function childNamed(node: SchemaNode, segment: string): [string, SchemaNode] | undefined {
  return childrenOf(node).find(([key]) => screaming(key) === segment);
}

/** Maps one GATEHOUSE__… variable onto the schema; a problem is reported naming the variable. */
function resolveVariable(variable: string): { override: EnvironmentOverride; node: SchemaNode } | { problem: string } {
  const segments = variable.slice(ENV_PREFIX.length).split("__");
  const attempt = (names: string[]): { path: string[]; node: SchemaNode } | { problem: string } => {
    let node = SCHEMA_ROOT;
    const path: string[] = [];
    for (const segment of names) {
      const child = childNamed(node, segment);
      if (!child) {
        const where = path.length > 0 ? `under ${path.join(".")}` : "at the top level";
        const known = childrenOf(node).map(([key]) => screaming(key));
        const hint = known.length > 0 ? `; known ${where}: ${known.join(", ")}` : ` (${path.join(".")} takes one JSON value)`;
        return { problem: `${variable}: names no config key (${segment} ${where})${hint}` };
      }
      path.push(child[0]);
      node = child[1];
    }
    return { path, node };
  };
  const direct = attempt(segments);
  if ("path" in direct) return { override: { variable, path: direct.path, fromFile: false }, node: direct.node };
  const last = segments[segments.length - 1]!;
  if (last.endsWith("_FILE") && last.length > "_FILE".length) {
    const viaFile = attempt([...segments.slice(0, -1), last.slice(0, -"_FILE".length)]);
    if ("path" in viaFile) return { override: { variable, path: viaFile.path, fromFile: true }, node: viaFile.node };
  }
  return direct;
}

const JSON_EXAMPLES: Record<string, string> = {
  array: `'["a","b"]'`,
  integer: "42",
  number: "42",
  boolean: "true or false",
  object: `'{"key":"value"}'`,
};

/**
 * Reads a variable's text as the schema types its key: a string key takes the text as it is (an
 * all-digit secret stays a string); arrays, numbers, booleans and objects are JSON. A key that may be
 * a string or an object (mail.transport) is an object only when the text is a JSON object.
 */
function typedValue(node: SchemaNode, text: string, variable: string): unknown {
  const types = node.type ? [node.type] : (node.anyOf ?? []).map((branch) => branch.type ?? "");
  if (types.length === 1 && types[0] === "string") return text;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (types.includes("string")) return text;
    // The parser's message quotes the text, which may be a token: it is left out.
    throw new Error(`${variable}: expected ${types.join(" or ")} as JSON, e.g. ${JSON_EXAMPLES[types[0] ?? ""] ?? "a JSON value"}`);
  }
  if (types.includes("string") && (value === null || typeof value !== "object")) return text;
  return value;
}

interface ResolvedOverride {
  override: EnvironmentOverride;
  node: SchemaNode;
}

function resolveEnvironment(env: Environment): { resolved: ResolvedOverride[]; problems: string[] } {
  const resolved: ResolvedOverride[] = [];
  const problems: string[] = [];
  for (const variable of Object.keys(env).filter((name) => name.startsWith(ENV_PREFIX)).sort()) {
    if (env[variable] === undefined) continue;
    const result = resolveVariable(variable);
    if ("problem" in result) problems.push(result.problem);
    else resolved.push(result);
  }
  for (const { override: a } of resolved) {
    const twin = resolved.find(({ override: b }) => b !== a && b.path.join(".") === a.path.join("."));
    if (twin && !a.fromFile) problems.push(`${a.variable} and ${twin.override.variable}: both set ${a.path.join(".")}; set one`);
  }
  return { resolved, problems };
}

/** Which config keys the environment sets, without reading any value; problems for unknown keys. */
export function environmentOverrides(env: Environment = process.env): { overrides: EnvironmentOverride[]; problems: string[] } {
  const { resolved, problems } = resolveEnvironment(env);
  return { overrides: resolved.map((r) => r.override), problems };
}

/** Puts every GATEHOUSE__… value onto `raw` (the parsed file), which it wins over. */
function applyEnvironment(raw: Record<string, unknown>, env: Environment): { overrides: EnvironmentOverride[]; problems: string[] } {
  const { resolved, problems } = resolveEnvironment(env);
  for (const { override, node } of resolved) {
    let text = env[override.variable]!;
    if (override.fromFile) {
      try {
        // Container secret files usually end with a newline that is not part of the value.
        text = readFileSync(text, "utf8").replace(/\r?\n$/, "");
      } catch (err) {
        problems.push(`${override.variable}: cannot read ${text}: ${(err as Error).message}`);
        continue;
      }
    }
    let value: unknown;
    try {
      value = typedValue(node, text, override.variable);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    setAt(raw, override.path, value);
  }
  return { overrides: resolved.map((r) => r.override), problems };
}

function keyPath(error: ErrorObject): string {
  return error.instancePath.replace(/^\//, "").replace(/\//g, ".") || "(top level)";
}

function describe(error: ErrorObject): string {
  const path = keyPath(error);
  switch (error.keyword) {
    case "additionalProperties":
      return `${path === "(top level)" ? "" : path + "."}${String(error.params.additionalProperty)}: unknown key`;
    case "required":
      return `${path === "(top level)" ? "" : path + "."}${String(error.params.missingProperty)}: is required`;
    case "format":
      return `${path}: ${JSON.stringify(error.data)} is not a valid ${String(error.params.format)}`;
    case "anyOf": {
      const types = ((error.parentSchema as { anyOf?: { properties?: { type?: { const?: unknown } } }[] } | undefined)?.anyOf ?? [])
        .map((branch) => branch.properties?.type?.const);
      if (types.length > 0 && types.every((type) => typeof type === "string")) return `${path}: "type" must be one of ${types.join(", ")}`;
      const forms = ((error.parentSchema as SchemaNode | undefined)?.anyOf ?? []).map((branch) =>
        branch.type === "object" ? "an object" : `a ${branch.type ?? "value"}${branch.pattern ? ` matching ${branch.pattern}` : ""}`);
      return `${path}: must be ${forms.join(" or ")}`;
    }
    default:
      return `${path}: ${error.message ?? "is invalid"}`;
  }
}

/**
 * anyOf reports each branch; the branch errors are noise next to the summary. A provisioning target
 * names its branch by `type`: then that branch's own errors are the ones that help, and they replace it.
 */
function withoutBranchNoise(all: ErrorObject[]): ErrorObject[] {
  const chosen = new Map<string, string>();
  for (const e of all) {
    if (e.keyword !== "anyOf") continue;
    const type = (e.data as { type?: unknown } | null)?.type;
    const branches = (e.parentSchema as { anyOf?: { properties?: { type?: { const?: unknown } } }[] } | undefined)?.anyOf ?? [];
    const index = branches.findIndex((branch) => branch.properties?.type?.const !== undefined && branch.properties.type.const === type);
    if (index >= 0) chosen.set(e.instancePath, `${e.schemaPath.replace(/\/anyOf$/, "")}/anyOf/${index}/`);
  }
  const inBranch = (e: ErrorObject, anyOfPath: string) => e.instancePath === anyOfPath || e.instancePath.startsWith(anyOfPath + "/");
  return all.filter((e) => {
    for (const [path, prefix] of chosen) {
      if (inBranch(e, path)) return e.schemaPath.startsWith(prefix);
    }
    return !all.some((o) => o.keyword === "anyOf" && (e.instancePath === o.instancePath || e.instancePath === `${o.instancePath}/type`) && e !== o);
  });
}

/**
 * Validates parsed JSON, with the GATEHOUSE__… variables of `env` laid over it, against the schema
 * and fills in defaults; throws ConfigError naming each bad key path (and the variable that set it).
 */
export function parseConfig(raw: unknown, file = "(inline)", env: Environment = {}): Config {
  const copy = structuredClone(raw);
  const applied = copy !== null && typeof copy === "object" && !Array.isArray(copy)
    ? applyEnvironment(copy as Record<string, unknown>, env)
    : { overrides: [], problems: [] };
  if (applied.problems.length > 0) throw new ConfigError(file, applied.problems);
  if (!validateSchema(copy)) {
    const errors = withoutBranchNoise(validateSchema.errors ?? []);
    const fromEnv = (error: ErrorObject) => {
      const path = keyPath(error);
      const source = applied.overrides.find((o) => path === o.path.join(".") || path.startsWith(o.path.join(".") + "."));
      return source ? `${describe(error)} (set by ${source.variable})` : describe(error);
    };
    throw new ConfigError(file, [...new Set(errors.map(fromEnv))]);
  }
  // The schema's own type, checked (and its defaults filled in) by the schema.
  const config = copy;
  const names = config.accounts.provision.map(provisionTargetName);
  const twice = names.filter((name, i) => names.indexOf(name) !== i);
  if (twice.length > 0) {
    throw new ConfigError(file, [...new Set(twice)].map((name) => `accounts.provision: two targets are named ${JSON.stringify(name)}; give each a unique "name"`));
  }
  config.publicUrl = config.publicUrl.replace(/\/+$/, "");
  return config;
}

/** A target's name in jobs, logs and `users list`: its own, else its type and where it makes accounts. */
export function provisionTargetName(target: ProvisionTargetConfig): string {
  if (target.name) return target.name;
  switch (target.type) {
    case "ejabberd":
      return `ejabberd ${target.host}`;
    case "xmpp":
      return `xmpp ${target.domain}`;
    case "ldap":
      return `ldap ${target.baseDN}`;
    case "http":
      return `http ${new URL(target.url).host}`;
  }
}

/** Reads and validates a config file, with the environment's GATEHOUSE__… overrides. */
export function loadConfig(file: string, env: Environment = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, [`cannot read file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseConfig(raw, file, env);
}

/** `--config FILE`, else ./config.json when present, else the embedded example. */
export function resolveConfigPath(option?: string, cwd = process.cwd()): string {
  if (option) return resolve(cwd, option);
  const local = resolve(cwd, "config.json");
  return existsSync(local) ? local : EXAMPLE_CONFIG;
}

/** The one place that reads the environment: log level and pretty-printing are operator switches, not config. */
export function readEnvironment(): { logLevel: string; workerRole: "sender" | "web" | null } {
  const role = process.env["GATEHOUSE_WORKER_ROLE"];
  return {
    logLevel: process.env["GATEHOUSE_LOG_LEVEL"] ?? process.env["LOG_LEVEL"] ?? "info",
    // Set by `serve --workers N` for the processes it forks; one of them sends the outbox.
    workerRole: role === "sender" || role === "web" ? role : null,
  };
}

/** Shorter auth tokens are accepted (sites bring their Prosody token) but warned about. */
export const MIN_AUTH_TOKEN_LENGTH = 32;

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const ip = ipaddr.isValid(host) ? ipaddr.process(host) : null;
  return ip?.range() === "loopback";
}

/**
 * What a valid config may still get wrong: logged at start-up and on reload, printed by
 * `check-config`. Never quotes a secret, only says where it is.
 */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  config.register.authTokens.forEach((token, i) => {
    if (token.length < MIN_AUTH_TOKEN_LENGTH) {
      warnings.push(`register.authTokens[${i}] is only ${token.length} characters: anyone who can guess it can register accounts; use at least ${MIN_AUTH_TOKEN_LENGTH} random characters`);
    }
  });
  if (config.metrics.enabled && !config.metrics.listen && !isLoopback(config.listen.host)) {
    warnings.push(`/metrics is served on the public listener (${config.listen.host}), where anyone can read it, API key ids included: set metrics.listen to a private address, or metrics.enabled to false`);
  }
  return warnings;
}

// --- live and restart-only keys --------------------------------------------------------------

/** One config key: its path, and why a change needs a restart (null: it is live). */
export interface ConfigKey {
  path: string[];
  restart: string | null;
}

/** Every key of the schema, down to the leaves or to an object that is restart-only as a whole. */
export function configKeys(node: SchemaNode = SCHEMA_ROOT, path: string[] = []): ConfigKey[] {
  return childrenOf(node).flatMap(([key, child]) =>
    child.properties && child.restart === undefined
      ? configKeys(child, [...path, key])
      : [{ path: [...path, key], restart: child.restart ?? null }]);
}

const RESTART_ONLY = configKeys().filter((key) => key.restart !== null);

function valueAt(config: unknown, path: string[]): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], config);
}

function setAt(target: Record<string, unknown>, path: string[], value: unknown): void {
  for (const key of path.slice(0, -1)) {
    const next = target[key];
    if (next === null || typeof next !== "object" || Array.isArray(next)) target[key] = {};
    target = target[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete target[last];
  else target[last] = value;
}

/** The restart-only keys (as dotted paths) whose value differs between two configs. */
export function restartOnlyChanges(previous: Config, next: Config): string[] {
  return RESTART_ONLY
    .filter(({ path }) => !isDeepStrictEqual(valueAt(previous, path), valueAt(next, path)))
    .map(({ path }) => path.join("."));
}

/**
 * What a reload puts in force: the new file's live keys, and the running config's restart-only
 * keys, which are still what the listener, store and routes were set up with (a mailed verify
 * link keeps naming the basePath that is mounted). `restart` lists the restart-only keys this
 * edit changed (against `previousFile`, the file as last loaded) to a value that is not running.
 */
export function configForReload(running: Config, file: Config, previousFile: Config = running): { config: Config; restart: string[] } {
  const config = structuredClone(file);
  for (const { path } of RESTART_ONLY) setAt(config, path, structuredClone(valueAt(running, path)));
  const waiting = new Set(restartOnlyChanges(running, file));
  return { config, restart: restartOnlyChanges(previousFile, file).filter((key) => waiting.has(key)) };
}
