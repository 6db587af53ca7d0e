import { appendFileSync } from "node:fs";
import { METHODS } from "node:http";
import type Router from "@koa/router";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import type Koa from "koa";
import type { Context, Next } from "koa";
import { withoutFrontDoor } from "../../src/app.ts";
import { openApiConfigOf, TRAILING_SLASH_OPTIONAL, type OpenApiConfig } from "../../src/http/openapi.ts";

// The check that the OpenAPI description cannot drift from the service: every response the tests
// see can be recorded, and each recorded response is validated against the operation it answered.

/** One request and its response, as a client saw it. */
export interface Exchange {
  method: string;
  /** The path as the client sent it (no query). */
  path: string;
  /** The router's pattern that handled it, or "(unmatched)". */
  route: string;
  status: number;
  /** Content-Type without parameters, lower-cased; "" when there is none. */
  contentType: string;
  headers: Record<string, string | string[]>;
  /** Present when the body is JSON: the parsed value. */
  json?: unknown;
  /** Whether there was any body at all. */
  hasBody: boolean;
  /** The keys of the config the app ran on that the description depends on (in recordings from several harnesses). */
  config?: OpenApiConfig;
}

type Doc = Record<string, unknown> & { paths: Record<string, Record<string, unknown>> };

/** Records every exchange `app` answers from now on, whoever calls it (supertest, a listening server). */
export function recordExchanges(app: Koa, sink: (exchange: Exchange) => void): void {
  // Registrations too: test/http/front-door.test.ts shows the front door answers them as Koa's route does.
  withoutFrontDoor(app);
  // Outermost, before the error middleware: it must see the answer the client gets, refusals included.
  app.middleware.unshift(async (ctx: Context, next: Next) => {
    // As sent: a URL parser would resolve `/%2e%2e/` segments the router never resolves.
    const path = ctx.originalUrl.split("?")[0]!;
    await next();
    sink(exchangeOf(ctx, path));
  });
}

// GATEHOUSE_OPENAPI_RECORD=FILE: every app the harness builds or the test service starts appends
// what it answered to FILE, for `npm run openapi -- --check-recording FILE`.
const RECORD_FILE = process.env["GATEHOUSE_OPENAPI_RECORD"];

/** Records `app`'s exchanges to GATEHOUSE_OPENAPI_RECORD's file, when it is set, one JSON line each with the config's keys that shape the description. */
export function recordIfAsked(app: Koa, config: OpenApiConfig): void {
  if (!RECORD_FILE) return;
  const keys = openApiConfigOf(config);
  recordExchanges(app, (exchange) => appendFileSync(RECORD_FILE, `${JSON.stringify({ ...exchange, config: keys })}\n`));
}

function exchangeOf(ctx: Context, path: string): Exchange {
  const contentType = (ctx.response.get("content-type") || "").split(";")[0]!.trim().toLowerCase();
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(ctx.response.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.map(String) : String(value);
  }
  const body: unknown = ctx.body;
  const exchange: Exchange = {
    method: ctx.method,
    path,
    route: (ctx as Context & { _matchedRoute?: string })._matchedRoute ?? "(unmatched)",
    status: ctx.status,
    contentType,
    headers,
    hasBody: body !== null && body !== undefined && body !== "",
  };
  if (contentType === "application/json" && exchange.hasBody) {
    try {
      exchange.json = typeof body === "string" ? JSON.parse(body) : Buffer.isBuffer(body) ? JSON.parse(body.toString("utf8")) : JSON.parse(JSON.stringify(body));
    } catch {
      exchange.json = Symbol.for("not JSON");
    }
  }
  return exchange;
}

// ---- checking ------------------------------------------------------------------------------

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const DOC_ID = "gatehouse-openapi.json";

interface Operation {
  method: string;
  path: string;
  key: string;
  spec: Record<string, unknown>;
}

interface ResponseObject {
  description?: string;
  headers?: Record<string, HeaderObject | { $ref: string }>;
  content?: Record<string, { schema?: unknown }>;
}

interface HeaderObject {
  required?: boolean;
  schema?: unknown;
}

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
const pointer = (parts: string[]) => `#/${parts.map((p) => p.replaceAll("~", "~0").replaceAll("/", "~1")).join("/")}`;

/** Validates exchanges against one OpenAPI document and keeps which (operation, status) pairs were seen. */
export class OpenApiChecker {
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();
  private readonly templates: { path: string; regex: RegExp }[];
  /** `METHOD path status` of every documented response some exchange matched and passed. */
  readonly seen = new Set<string>();

  constructor(private readonly doc: Doc) {
    this.ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(this.ajv);
    this.ajv.addSchema(doc, DOC_ID);
    this.templates = Object.entries(doc.paths).map(([path, item]) => ({ path, regex: templateRegex(path, item[TRAILING_SLASH_OPTIONAL] === true) }));
  }

  /** Every operation of the document. */
  operations(): Operation[] {
    return Object.entries(this.doc.paths).flatMap(([path, item]) =>
      HTTP_METHODS.filter((m) => item[m] !== undefined).map((method) => ({
        method, path, key: `${method.toUpperCase()} ${path}`, spec: item[method] as Record<string, unknown>,
      })));
  }

  /** Every documented response, as `METHOD path status`. */
  documentedResponses(): string[] {
    return this.operations().flatMap((op) => Object.keys(op.spec["responses"] as object).map((status) => `${op.key} ${status}`));
  }

  /** The problems of one exchange: empty when the description allows exactly what was answered. */
  check(exchange: Exchange): string[] {
    const what = `${exchange.method} ${exchange.path} → ${exchange.status} ${exchange.contentType || "(no type)"}`;
    const template = this.templates.find((t) => t.regex.test(exchange.path))?.path;
    if (template === undefined) {
      return this.checkResponse(what, exchange, this.component("NotFound"), ["components", "responses", "NotFound"], 404);
    }
    const item = this.doc.paths[template]!;
    const method = exchange.method === "HEAD" && item["get"] && !item["head"] ? "get" : exchange.method.toLowerCase();
    const op = item[method] as Record<string, unknown> | undefined;
    if (!op) {
      const problems = this.checkResponse(what, exchange, this.component("MethodNotAllowed"), ["components", "responses", "MethodNotAllowed"], 405);
      const allow = String(exchange.headers["allow"] ?? "").split(/,\s*/);
      for (const documented of HTTP_METHODS.filter((m) => item[m] !== undefined)) {
        if (!allow.includes(documented.toUpperCase())) problems.push(`${what}: Allow (${allow.join(", ")}) leaves out ${documented.toUpperCase()}, which ${template} documents`);
      }
      return problems;
    }
    const responses = op["responses"] as Record<string, ResponseObject>;
    const status = String(exchange.status);
    const response = responses[status];
    if (!response) return [`${what}: ${method.toUpperCase()} ${template} documents no ${status} (it documents ${Object.keys(responses).join(", ")})`];
    const problems = this.checkResponse(what, exchange, response, ["paths", template, method, "responses", status], undefined, exchange.method === "HEAD");
    if (problems.length === 0) this.seen.add(`${method.toUpperCase()} ${template} ${status}`);
    return problems;
  }

  private component(name: string): ResponseObject {
    return ((this.doc["components"] as Record<string, Record<string, ResponseObject>>)["responses"]!)[name]!;
  }

  private checkResponse(what: string, exchange: Exchange, response: ResponseObject, at: string[], status?: number, headOnly = false): string[] {
    const problems: string[] = [];
    if (status !== undefined && exchange.status !== status) problems.push(`${what}: expected ${status} here`);
    for (const [name, raw] of Object.entries(response.headers ?? {})) {
      const spec = this.resolve(raw) as HeaderObject;
      const value = exchange.headers[name.toLowerCase()];
      if (value === undefined) {
        if (spec.required) problems.push(`${what}: the required header ${name} is missing`);
        continue;
      }
      if (spec.schema === undefined) continue;
      const validate = "$ref" in raw ? this.validatorAt(`${raw.$ref}/schema`) : this.validator([...at, "headers", name, "schema"]);
      const values = Array.isArray(value) ? value : [value];
      if (!values.some((v) => validate(v))) problems.push(`${what}: header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(validate.errors)}`);
    }
    const content = response.content;
    if (!content) {
      if (exchange.hasBody) problems.push(`${what}: a body where the description has none`);
      return problems;
    }
    if (headOnly) return problems;
    if (!(exchange.contentType in content)) {
      problems.push(`${what}: content type ${exchange.contentType || "(none)"} is not documented (${Object.keys(content).join(", ")})`);
      return problems;
    }
    if (exchange.contentType === "application/json") {
      const validate = this.validator([...at, "content", exchange.contentType, "schema"]);
      if (!validate(exchange.json)) problems.push(`${what}: body ${JSON.stringify(exchange.json)?.slice(0, 300)}: ${this.ajv.errorsText(validate.errors)}`);
    }
    return problems;
  }

  /** A validator for the schema at `at`, a path into the document. */
  private validator(at: string[]): ValidateFunction {
    return this.validatorAt(pointer(at));
  }

  private validatorAt(localRef: string): ValidateFunction {
    const ref = `${DOC_ID}${localRef}`;
    let validate = this.validators.get(ref);
    if (!validate) {
      validate = this.ajv.compile({ $ref: ref });
      this.validators.set(ref, validate);
    }
    return validate;
  }

  private resolve(value: unknown): unknown {
    let current = value;
    while (current && typeof current === "object" && "$ref" in current) {
      const parts = String((current as { $ref: string }).$ref).replace(/^#\//, "").split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
      current = parts.reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], this.doc);
    }
    return current;
  }
}

/**
 * An OpenAPI path template as a regular expression, matched as the router matches: a path that
 * does not end in a slash may be requested with one; one that ends in a slash needs it, unless
 * the description says otherwise.
 */
function templateRegex(template: string, slashOptional: boolean): RegExp {
  const source = template.split(/(\{[^}]+\})/).map((part) => (part.startsWith("{") ? "[^/]+" : part.replace(/[.*+?^$()|[\]\\]/g, "\\$&"))).join("");
  if (template.endsWith("/")) return new RegExp(`^${source}${slashOptional ? "?" : ""}$`);
  return new RegExp(`^${source}/?$`);
}

/**
 * The routes `app` mounts that the document has no operation for, as `METHOD /path/:param`.
 * A layer for every method (router.all) is middleware, not an operation; HEAD comes with GET.
 */
export function routesWithoutOperation(app: Koa, doc: Doc): string[] {
  const missing: string[] = [];
  for (const mw of app.middleware) {
    const router = (mw as { router?: Router }).router;
    if (!router) continue;
    for (const layer of router.stack) {
      if (layer.methods.length === 0 || METHODS.every((m) => layer.methods.includes(m))) continue;
      const template = String(layer.path).replace(/:([A-Za-z0-9_]+)/g, "{$1}");
      for (const method of new Set(layer.methods)) {
        if (method === "HEAD" && layer.methods.includes("GET")) continue;
        if (!doc.paths[template]?.[method.toLowerCase()]) missing.push(`${method} ${layer.path}`);
      }
    }
  }
  return missing;
}
