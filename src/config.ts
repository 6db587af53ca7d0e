import { readFileSync, existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
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
//
// Two more annotations serve the operator: `examples` (else the default) is quoted by every error
// about the key, so a refusal shows a right value; `relativePath: PREFIX` marks a string that,
// after PREFIX, is a path, which loadConfig resolves against the config file's directory. A key
// named `dir` or `file`, or ending in `Dir` or `File` (`templates.dir`), is a path without the mark.

const strict = { additionalProperties: false } as const;
const ipOrCidr = Type.String({ minLength: 1, format: "ip-or-cidr", examples: ["192.0.2.0/24"] });
const EXAMPLE_PASSWORD = "a-password-of-its-own";

const targetCommon = {
  /** Names the target in jobs, logs and `users list`; defaults to its type and host. Unique. */
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\t\\n]+$", examples: ["chat server"] })),
  /** Default 3000 (DEFAULT_TIMEOUT_MS); ajv fills no defaults inside a union's branches. */
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, examples: [3000] })),
};
const PROVISION_TARGET = Type.Union([
  Type.Object({
    type: Type.Literal("ejabberd"),
    ...targetCommon,
    url: Type.String({ format: "http-url", examples: ["http://127.0.0.1:5281/api"] }),
    host: Type.String({ minLength: 1, examples: ["chat.example.org"] }),
    auth: Type.Optional(Type.Union([
      Type.Object({
        type: Type.Literal("basic"),
        user: Type.String({ minLength: 1, examples: ["admin@chat.example.org"] }),
        password: Type.String({ minLength: 1, examples: [EXAMPLE_PASSWORD] }),
      }, strict),
      Type.Object({ type: Type.Literal("bearer"), token: Type.String({ minLength: 1, examples: ["an-oauth-token"] }) }, strict),
    ])),
  }, strict),
  Type.Object({
    type: Type.Literal("xmpp"),
    ...targetCommon,
    service: Type.String({ pattern: "^xmpps?://[^/]+$", description: "xmpp://HOST:PORT or xmpps://HOST:PORT", examples: ["xmpp://chat.example.org:5222"] }),
    domain: Type.String({ minLength: 1, examples: ["chat.example.org"] }),
    jid: Type.String({ pattern: "^[^@/\\s]+@[^@/\\s]+$", description: "a bare JID, user@domain", examples: ["admin@chat.example.org"] }),
    password: Type.String({ minLength: 1, examples: [EXAMPLE_PASSWORD] }),
    tls: Type.Optional(Type.Object({
      ca: Type.Optional(Type.String({ examples: ["-----BEGIN CERTIFICATE-----\n…"] })),
      rejectUnauthorized: Type.Optional(Type.Boolean({ examples: [true] })),
    }, strict)),
  }, strict),
  Type.Object({
    type: Type.Literal("ldap"),
    ...targetCommon,
    url: Type.String({ pattern: "^ldaps?://.+", description: "an ldap:// or ldaps:// URL", examples: ["ldaps://ldap.example.org"] }),
    bindDN: Type.String({ minLength: 1, examples: ["cn=gatehouse,dc=example,dc=org"] }),
    bindPassword: Type.String({ minLength: 1, examples: [EXAMPLE_PASSWORD] }),
    baseDN: Type.String({ minLength: 1, examples: ["ou=people,dc=example,dc=org"] }),
    objectClasses: Type.Optional(Type.Array(Type.String({ minLength: 1, examples: ["inetOrgPerson"] }), { minItems: 1 })),
    attributes: Type.Optional(Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String(), Type.Array(Type.String())]), {
      examples: [{ cn: "{username}" }],
    })),
    includeMail: Type.Optional(Type.Boolean({ examples: [false] })),
  }, strict),
  Type.Object({
    type: Type.Literal("http"),
    ...targetCommon,
    url: Type.String({ format: "http-url", examples: ["https://accounts.example.org/gatehouse"] }),
    secret: Type.String({ minLength: 16, examples: ["16-or-more-random-characters"] }),
    checkUrl: Type.Optional(Type.String({ format: "http-url", examples: ["https://accounts.example.org/gatehouse/check"] })),
    includePassword: Type.Optional(Type.Boolean({ examples: [false] })),
    includeMail: Type.Optional(Type.Boolean({ examples: [false] })),
  }, strict),
]);

export type ProvisionTargetConfig = Static<typeof PROVISION_TARGET>;

export const CONFIG_SCHEMA = Type.Object({
  $schema: Type.Optional(Type.String()),
  listen: Type.Object({
    host: Type.String({ minLength: 1, default: "127.0.0.1" }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  }, { ...strict, default: {}, restart: "the listener is bound at start-up" }),
  publicUrl: Type.String({ format: "http-url", default: "http://localhost:8080", examples: ["https://signup.example.org"] }),
  // Koa reads app.proxy per request, and createApp makes that a look-up of this key.
  trustProxy: Type.Boolean({ default: false }),
  storage: Type.String({
    pattern: "^(sqlite:.+|postgres(ql)?://.+)$",
    description: "sqlite:PATH or a postgres:// URL",
    default: "sqlite:./data/gatehouse.db",
    examples: ["sqlite:./data/gatehouse.db", "postgres://gatehouse:PASSWORD@localhost/gatehouse"],
    relativePath: "sqlite:",
    restart: "the store is opened at start-up",
  }),
  redis: Type.Optional(Type.String({ pattern: "^rediss?://", description: "a redis:// or rediss:// URL", examples: ["redis://127.0.0.1:6379"], restart: "the Redis connection is made at start-up" })),
  secret: Type.Optional(Type.String({
    minLength: 32,
    examples: ["64-hex-digits-from-openssl-rand-hex-32"],
    restart: "mail hashes and sealed payloads are keyed at start-up",
  })),
  register: Type.Object({
    basePath: Type.String({ pattern: "^/([^/?#]+/)*$", description: "a path that starts and ends with /", default: "/register_account/", restart: "the routes are mounted at start-up" }),
    secure: Type.Boolean({ default: true }),
    authTokens: Type.Array(Type.String({ minLength: 1, examples: ["a-long-random-token-from-openssl-rand-hex-32"] }), { minItems: 1 }),
    throttleSeconds: Type.Integer({ minimum: 0, default: 0, examples: [60] }),
    blacklist: Type.Array(ipOrCidr, { default: [] }),
    whitelist: Type.Array(ipOrCidr, { default: [] }),
    filteredMails: Type.Array(Type.String({ format: "regex", examples: [".*@banneddomain\\.tld$"] }), { default: [] }),
    pendingTtlSeconds: Type.Integer({ minimum: 1, default: 86400 }),
    sendMail: Type.Boolean({ default: true }),
    // New verification links a pending registration may be sent after the first (DESIGN §11).
    resendLimit: Type.Integer({ minimum: 0, maximum: 100, default: 3 }),
    blockDisposable: Type.Boolean({ default: false }),
    // DESIGN §11: "manual" makes a verified registration wait for a moderator instead of becoming an account.
    approval: Type.Union([Type.Literal("none"), Type.Literal("manual")], { default: "none" }),
    /** Who is mailed the approve and reject links of each registration waiting for approval. */
    moderators: Type.Array(Type.String({ pattern: "^[^@\\s]+@[^@\\s]+$", maxLength: 320 }), { default: [], examples: [["moderators@example.org"]] }),
    // Two weeks: long enough for volunteer moderators, short enough that a name is not held forever.
    approvalTtlSeconds: Type.Integer({ minimum: 60, default: 1209600 }),
    // One subscriber usually holds a whole /64 (often a /56 or /48): rate limits count by network, not by address.
    ipv6Prefix: Type.Integer({ minimum: 32, maximum: 128, default: 64 }),
  }, strict),
  mail: Type.Object({
    from: Type.String({ minLength: 3, default: "gatehouse <noreply@localhost>" }),
    transport: Type.Union([
      Type.String({ pattern: "^(dir:.+|smtps?://.+)$", relativePath: "dir:" }),
      Type.Record(Type.String(), Type.Unknown()),
    ], {
      default: "dir:./data/mail",
      description: "an smtp:// or smtps:// URL, dir:PATH, or nodemailer options {host, port, …}",
      examples: ["smtp://gatehouse:PASSWORD@mail.example.org:587", "dir:./data/mail", { host: "mail.example.org", port: 587 }],
    }),
  }, { ...strict, default: {} }),
  invites: Type.Object({
    ttlSeconds: Type.Integer({ minimum: 1, default: 604800 }),
    apiPath: Type.String({ pattern: "^/[^?#]*$", description: "a path that starts with /", default: "/invites_api", restart: "the route is mounted at start-up" }),
    /** An accepted invite waits for a moderator too (DESIGN §11), as register.approval "manual" does. */
    requireApproval: Type.Boolean({ default: false }),
    // Invites an account makes through the invitation API with its login cookie (DESIGN §11).
    // Absent: unlimited. API keys and the command line are never limited.
    perUser: Type.Optional(Type.Object({
      /** Invites per account within any perDays window; absent: no count limit. */
      max: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, examples: [5] })),
      perDays: Type.Number({ exclusiveMinimum: 0, maximum: 3660, default: 30 }),
      /** How old an account must be before it may invite at all. */
      minAccountAgeDays: Type.Number({ minimum: 0, maximum: 3660, default: 0 }),
      /** Accounts (the site's own staff) whose invites are not limited: gatehouse has no admin role for accounts. */
      exempt: Type.Array(Type.String({ minLength: 1, maxLength: 1023 }), { default: [], examples: [["staff"]] }),
    }, strict)),
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
      port: Type.Integer({ minimum: 0, maximum: 65535, examples: [9100] }),
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
      url: Type.String({ format: "http-url", examples: ["https://hooks.example.org/gatehouse"] }),
      secret: Type.String({ minLength: 16, examples: ["16-or-more-random-characters"] }),
    }, strict)),
  }, strict)),
  // What pages and mails show (DESIGN §10). The name falls back to publicUrl's host only when unset.
  site: Type.Object({
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: "^[^\\t\\n\\r]+$", examples: ["Example Chat"] })),
    logoUrl: Type.Optional(Type.String({ format: "http-url", examples: ["https://example.org/logo.png"] })),
    // A hex colour only: it is written into the pages' inline style.
    accentColor: Type.String({ pattern: "^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$", default: "#2453a6" }),
    homeUrl: Type.Optional(Type.String({ format: "http-url", examples: ["https://example.org/"] })),
    signInUrl: Type.Optional(Type.String({ format: "http-url", examples: ["https://example.org/login"] })),
    supportUrl: Type.Optional(Type.String({ format: "link-url", examples: ["mailto:help@example.org"] })),
  }, { ...strict, default: {} }),
  templates: Type.Object({
    // Files here replace the built-in ones of the same relative name; read at start-up and on each reload.
    dir: Type.Optional(Type.String({ minLength: 1, examples: ["./templates"] })),
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
ajv.addKeyword({ keyword: "relativePath", schemaType: "string" });
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

export interface SchemaNode {
  type?: string;
  anyOf?: readonly SchemaNode[];
  properties?: Record<string, SchemaNode>;
  patternProperties?: Record<string, SchemaNode>;
  required?: readonly string[];
  items?: SchemaNode;
  const?: unknown;
  default?: unknown;
  examples?: readonly unknown[];
  description?: string;
  pattern?: string;
  restart?: string;
  relativePath?: string;
}

const SCHEMA_ROOT = CONFIG_SCHEMA as unknown as SchemaNode;

/** The keys of an object node that are config keys ($schema only names the file's schema). */
export function childrenOf(node: SchemaNode = SCHEMA_ROOT): [string, SchemaNode][] {
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
  /** The file it names, when it does. */
  file?: string;
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

/** Where the schema has no example for a key, one of its JSON type. */
const JSON_EXAMPLES: Record<string, string> = {
  array: `'["a","b"]'`,
  integer: "42",
  number: "42",
  boolean: "true or false",
  object: `'{"key":"value"}'`,
};

const isEmpty = (value: unknown) =>
  (Array.isArray(value) && value.length === 0) || (value !== null && typeof value === "object" && Object.keys(value).length === 0);

/**
 * A right value for a key, from its schema: its `examples`, else its default, else one built from
 * its items or its required keys; undefined when the schema gives nothing to go on.
 */
export function exampleOf(node: SchemaNode | undefined): unknown {
  if (!node) return undefined;
  if (node.examples && node.examples.length > 0) return node.examples[0];
  if (node.const !== undefined) return node.const;
  if (node.default !== undefined && !isEmpty(node.default)) return node.default;
  if (node.type === "array" && node.items) {
    const item = exampleOf(node.items);
    return item === undefined ? undefined : [item];
  }
  if (node.anyOf) return node.anyOf.map(exampleOf).find((example) => example !== undefined);
  if (node.properties) {
    // The keys a file must write; an object whose keys all have defaults, or are all optional, shows them all.
    const required = (node.required ?? []).filter((key) => key !== "$schema");
    const needed = required.filter((key) => node.properties?.[key]?.default === undefined);
    const example: Record<string, unknown> = {};
    const keys = needed.length > 0 ? needed : required.length > 0 ? required : Object.keys(node.properties).filter((key) => key !== "$schema");
    for (const key of keys) {
      const value = exampleOf(node.properties[key]);
      if (value === undefined) return undefined;
      example[key] = value;
    }
    return example;
  }
  return undefined;
}

/** An example as it is written in the file. */
function quoteExample(example: unknown): string {
  return JSON.stringify(example);
}

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
    const example = exampleOf(node);
    const shown = example === undefined
      ? JSON_EXAMPLES[types[0] ?? ""] ?? "a JSON value"
      : typeof example === "object" ? `'${quoteExample(example)}'` : quoteExample(example);
    throw new Error(`${variable}: expected ${types.join(" or ")} as JSON, e.g. ${shown}`);
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
        override.file = text;
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

/** The known key nearest to a misspelt one, if one is near enough to be what was meant. */
function nearestKey(key: string, known: string[]): string | undefined {
  // Edits, a swap of two neighbours counting as one (`prot` for `port`).
  const distance = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) {
        const cost = a[i - 1] === b[j - 1] ? 0 : 1;
        d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
        if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
      }
    }
    return d[a.length]![b.length]!;
  };
  const lower = key.toLowerCase();
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const d = candidate.toLowerCase() === lower ? 0 : distance(lower, candidate.toLowerCase());
    if (d <= Math.max(1, Math.floor(candidate.length / 4)) && (!best || d < best.distance)) best = { key: candidate, distance: d };
  }
  return best?.key;
}

/** ", e.g. VALUE" for a key whose schema gives an example; nothing otherwise. */
function exampleHint(node: SchemaNode | undefined): string {
  const example = exampleOf(node);
  return example === undefined ? "" : `, e.g. ${quoteExample(example)}`;
}

function describe(error: ErrorObject): string {
  const path = keyPath(error);
  const parent = error.parentSchema as SchemaNode | undefined;
  const under = path === "(top level)" ? "" : path + ".";
  switch (error.keyword) {
    case "additionalProperties": {
      const key = String(error.params.additionalProperty);
      const known = Object.keys(parent?.properties ?? {}).filter((name) => name !== "$schema");
      const near = nearestKey(key, known);
      const where = path === "(top level)" ? "at the top level" : `under ${path}`;
      return `${under}${key}: unknown key${near ? `; did you mean ${JSON.stringify(near)}?` : ""} (known ${where}: ${known.join(", ")})`;
    }
    case "required": {
      const key = String(error.params.missingProperty);
      return `${under}${key}: is required${exampleHint(parent?.properties?.[key])}`;
    }
    case "format":
      return `${path}: ${JSON.stringify(error.data)} is not a valid ${String(error.params.format)}${exampleHint(parent)}`;
    case "pattern":
      if (parent?.description) return `${path}: must be ${parent.description}${exampleHint(parent)}`;
      return `${path}: ${error.message ?? "is invalid"}${exampleHint(parent)}`;
    case "anyOf": {
      const types = ((parent as { anyOf?: { properties?: { type?: { const?: unknown } } }[] } | undefined)?.anyOf ?? [])
        .map((branch) => branch.properties?.type?.const);
      if (types.length > 0 && types.every((type) => typeof type === "string")) return `${path}: "type" must be one of ${types.join(", ")}`;
      if (parent?.description) return `${path}: must be ${parent.description}${exampleHint(parent)}`;
      const choices = (parent?.anyOf ?? []).map((branch) => branch.const);
      if (choices.length > 0 && choices.every((choice) => choice !== undefined)) {
        return `${path}: must be one of ${choices.map((choice) => JSON.stringify(choice)).join(", ")}${exampleHint(parent)}`;
      }
      const forms = (parent?.anyOf ?? []).map((branch) =>
        branch.type === "object" ? "an object" : `a ${branch.type ?? "value"}${branch.pattern ? ` matching ${branch.pattern}` : ""}`);
      return `${path}: must be ${forms.join(" or ")}${exampleHint(parent)}`;
    }
    default:
      return `${path}: ${error.message ?? "is invalid"}${exampleHint(parent)}`;
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

export interface ParseOptions {
  /**
   * The directory relative paths of the file (and the defaults it leaves in place) are resolved
   * against; none leaves them relative, that is, to the working directory. Paths set from the
   * environment stay as given: they are relative to where the command was started.
   */
  baseDir?: string;
}

/**
 * Validates parsed JSON, with the GATEHOUSE__… variables of `env` laid over it, against the schema
 * and fills in defaults; throws ConfigError naming each bad key path (and the variable that set it).
 */
export function parseConfig(raw: unknown, file = "(inline)", env: Environment = {}, options: ParseOptions = {}): Config {
  return buildConfig(raw, file, env, options).config;
}

function buildConfig(raw: unknown, file: string, env: Environment, options: ParseOptions): { config: Config; overrides: EnvironmentOverride[] } {
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
  if (options.baseDir !== undefined) {
    const baseDir = options.baseDir;
    const fromEnv = (path: string[]) => applied.overrides.some((o) => isAtOrUnder(path, o.path));
    return { config: resolvePaths(SCHEMA_ROOT, config, baseDir, [], fromEnv) as Config, overrides: applied.overrides };
  }
  return { config, overrides: applied.overrides };
}

function isAtOrUnder(path: string[], prefix: string[]): boolean {
  return prefix.length <= path.length && prefix.every((key, i) => path[i] === key);
}

/** Key names that say "a file system path" by themselves; `basePath` and `apiPath` are URL paths. */
const PATH_KEY = /^(dir|file)$|[a-z](Dir|File)$/;

/** `value` with each string its schema marks `relativePath` (or its name marks a path) made absolute against `baseDir`. */
function resolvePaths(node: SchemaNode, value: unknown, baseDir: string, path: string[], keep: (path: string[]) => boolean): unknown {
  if (keep(path)) return value;
  if (typeof value === "string") {
    const named = PATH_KEY.test(path[path.length - 1] ?? "") ? "" : undefined;
    const prefix = [node.relativePath ?? named, ...(node.anyOf ?? []).map((branch) => branch.relativePath)]
      .find((candidate) => candidate !== undefined && value.startsWith(candidate));
    if (prefix === undefined) return value;
    const rest = value.slice(prefix.length);
    // ":memory:" is SQLite's name for a database that is no file.
    if (rest === "" || rest === ":memory:" || isAbsolute(rest)) return value;
    return prefix + resolve(baseDir, rest);
  }
  if (Array.isArray(value)) {
    return node.items ? value.map((item, i) => resolvePaths(node.items!, item, baseDir, [...path, String(i)], keep)) : value;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    for (const shape of node.properties ? [node] : (node.anyOf ?? []).filter((branch) => branch.properties)) {
      for (const [key, child] of Object.entries(shape.properties!)) {
        if (key in out) out[key] = resolvePaths(child, out[key], baseDir, [...path, key], keep);
      }
    }
    return out;
  }
  return value;
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

/** Where a config value came from, for `check-config`. */
export type ValueSource =
  | { kind: "default" }
  | { kind: "file" }
  | { kind: "env"; variable: string }
  | { kind: "env-file"; variable: string; file: string };

/** A config as loaded from a file, with what is needed to tell where each value came from. */
export interface LoadedConfig {
  file: string;
  config: Config;
  /** The file's JSON as written. */
  raw: unknown;
  overrides: EnvironmentOverride[];
}

/** Where the value at `path` came from: the environment wins over the file, the file over the default. */
export function sourceOf(loaded: LoadedConfig, path: string[]): ValueSource {
  const override = loaded.overrides.find((o) => isAtOrUnder(path, o.path));
  if (override) {
    return override.fromFile ? { kind: "env-file", variable: override.variable, file: override.file ?? "" } : { kind: "env", variable: override.variable };
  }
  return valueAt(loaded.raw, path) === undefined ? { kind: "default" } : { kind: "file" };
}

/**
 * Whether `file` is the embedded example. Its relative paths stay relative to the working
 * directory, which is what `npm start` in a checkout (DESIGN §1) expects: `./data/` there.
 */
export function isExampleConfig(file: string): boolean {
  return resolve(file) === EXAMPLE_CONFIG;
}

/** Reads and validates a config file, with the environment's GATEHOUSE__… overrides. */
export function loadConfig(file: string, env: Environment = process.env): Config {
  return loadConfigWithSources(file, env).config;
}

/**
 * loadConfig, keeping the file's JSON and the overrides; relative paths in the file are resolved
 * against the file's directory (except in the embedded example, see isExampleConfig).
 */
export function loadConfigWithSources(file: string, env: Environment = process.env): LoadedConfig {
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
  const baseDir = isExampleConfig(file) ? undefined : dirname(resolve(file));
  const { config, overrides } = buildConfig(raw, file, env, { baseDir });
  return { file, config, raw, overrides };
}

/** `--config FILE`, else $GATEHOUSE_CONFIG, else ./config.json when present, else the embedded example. */
export function resolveConfigPath(option?: string, cwd = process.cwd(), env: Environment = process.env): string {
  if (option) return resolve(cwd, option);
  const named = env["GATEHOUSE_CONFIG"];
  if (named) return resolve(cwd, named);
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

let exampleTokens: Set<string> | undefined;
const AUTH_TOKEN_NODE = SCHEMA_ROOT.properties?.["register"]?.properties?.["authTokens"];

/** The auth tokens config.example.json ships with: public, so never fit for a running service. */
function isExampleToken(token: string): boolean {
  if (!exampleTokens) {
    try {
      const example = JSON.parse(readFileSync(EXAMPLE_CONFIG, "utf8")) as { register?: { authTokens?: unknown } };
      const tokens = example.register?.authTokens;
      exampleTokens = new Set(Array.isArray(tokens) ? tokens.filter((t): t is string => typeof t === "string") : []);
    } catch {
      exampleTokens = new Set();
    }
    // The token error messages suggest is public too.
    for (const example of AUTH_TOKEN_NODE?.items?.examples ?? []) if (typeof example === "string") exampleTokens.add(example);
  }
  return token.toLowerCase().startsWith("change-me") || exampleTokens.has(token);
}

/**
 * What a valid config may still get wrong: logged at start-up and on reload, printed by
 * `check-config` and (to stderr) by the other commands. Never quotes a secret, only says where it
 * is. `file` is the config file the config was loaded from, when there is one.
 */
export function configWarnings(config: Config, file?: string): string[] {
  const warnings: string[] = [];
  if (file !== undefined && isExampleConfig(file)) {
    warnings.push(`running on the example config ${file}, whose auth token is public: copy it to ./config.json (or name your own with --config or GATEHOUSE_CONFIG) and set register.authTokens to a random token`);
  }
  config.register.authTokens.forEach((token, i) => {
    if (isExampleToken(token)) {
      warnings.push(`register.authTokens[${i}] is an example token (config.example.json's or the schema's): anyone can register accounts with it; set a random one, e.g. from \`openssl rand -hex 32\``);
    } else if (token.length < MIN_AUTH_TOKEN_LENGTH) {
      warnings.push(`register.authTokens[${i}] is only ${token.length} characters: anyone who can guess it can register accounts; use at least ${MIN_AUTH_TOKEN_LENGTH} random characters`);
    }
  });
  if (!config.register.secure && !isLoopback(config.listen.host)) {
    warnings.push(`register.secure is false and the service listens on ${config.listen.host}, beyond this machine: registrations, passwords included, are accepted over plain HTTP; set register.secure to true and serve HTTPS (behind a proxy, with trustProxy)`);
  }
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
