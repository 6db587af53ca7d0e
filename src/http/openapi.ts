import { readFileSync } from "node:fs";
import { Type, type TSchema } from "@sinclair/typebox";
import type { Config } from "../config.ts";
import { MAX_INVITE_TTL_SECONDS, MAX_INVITE_USES, MIN_INVITE_TTL_SECONDS } from "../domain/invites.ts";
import { statusOf, type ErrorCode } from "../errors.ts";
import { POW_CHALLENGE_PATH } from "./antibot.ts";
import { BODY_LIMIT } from "./body.ts";
import { SESSION_COOKIE } from "./session-cookie.ts";

/**
 * The OpenAPI 3.1 description of every HTTP endpoint, the one source of truth: served at
 * /openapi.json, written to docs/openapi.json by `npm run openapi`, and checked against real
 * responses by test/http/openapi.test.ts.
 *
 * Adding an endpoint is one entry in `operations()` below: its path, what it answers on success,
 * and the error codes it may refuse with; the error responses (status, content types, body shape,
 * Retry-After) follow from the codes and src/errors.ts.
 */

/** The keys the description depends on. */
export interface OpenApiConfig {
  publicUrl: Config["publicUrl"];
  register: Pick<Config["register"], "basePath">;
  invites: Pick<Config["invites"], "apiPath">;
  metrics: Pick<Config["metrics"], "enabled" | "listen">;
}

/** Only the keys the description depends on, e.g. to say which description a recorded response belongs to. */
export function openApiConfigOf(config: OpenApiConfig): OpenApiConfig {
  return {
    publicUrl: config.publicUrl,
    register: { basePath: config.register.basePath },
    invites: { apiPath: config.invites.apiPath },
    metrics: { enabled: config.metrics.enabled, ...(config.metrics.listen ? { listen: config.metrics.listen } : {}) },
  };
}

/** Every code of the catalogue, with what it means; the compiler insists each code is here. */
const ERROR_CODES: Record<ErrorCode, string> = {
  NOT_FOUND: "no such path",
  METHOD_NOT_ALLOWED: "the path does not take this method; `Allow` lists those it takes",
  HTTPS_REQUIRED: "`register.secure` is on and the request came over plain HTTP",
  BODY_TOO_LARGE: `the body is over ${BODY_LIMIT} bytes`,
  UNSUPPORTED_MEDIA_TYPE: "the body is not of a type this endpoint reads, or is compressed",
  MALFORMED_REQUEST: "the body or a parameter cannot be read: not base64, not JSON, not UTF-8, a field missing or of the wrong type",
  AUTH_TOKEN_INVALID: "`auth_token` is none of `register.authTokens`",
  TOO_MANY_ATTEMPTS: "too many failed attempts (bad `auth_token`s, failed logins) from this address",
  IP_BLACKLISTED: "the end user's `ip` is in `register.blacklist`",
  MAIL_FILTERED: "the mail address matches one of `register.filteredMails`",
  MAIL_DISPOSABLE: "the mail address is at a disposable-mail domain (`register.blockDisposable`)",
  USERNAME_INVALID: "the username fails XMPP nodeprep",
  PASSWORD_TOO_SHORT: "the password is shorter than `accounts.minPasswordLength`",
  USERNAME_RESERVED: "the username is (or looks like) one of `accounts.reservedUsernames`",
  USERNAME_PENDING: "the username (or a look-alike) waits for another registration's verification",
  USERNAME_TAKEN: "the username (or a look-alike) belongs to an account",
  USERNAME_TAKEN_DOWNSTREAM: "an account server (`accounts.provision`) already has this username",
  THROTTLED: "this address registered less than `register.throttleSeconds` ago",
  MAIL_TAKEN: "the mail address belongs to an account or a pending registration",
  TOKEN_UNKNOWN: "the verification code is unknown or has expired",
  API_KEY_INVALID: "no API key, or not a valid one",
  INVITE_NOT_FOUND: "no such invitation (the invitation API also says this for used, expired and revoked ones)",
  INVITE_GONE: "the invitation was used up, has expired or was revoked",
  INVITE_NAME_MISMATCH: "the invitation is for another username",
  LOGIN_FAILED: "the name or the password is wrong",
  UNAUTHENTICATED: "no session: log in, or present an API key",
  CROSS_SITE_REQUEST: "a request that a cookie authorizes came from another site",
  STORAGE_FULL: "the store's disk is full",
  REQUEST_INCOMPLETE: "the client did not send its whole body (nobody is left to read this answer)",
  SERVER_BUSY: "too many password hashes are queued",
  ACCOUNT_SERVER_UNAVAILABLE: "an account server did not answer in time",
  STORE_UNAVAILABLE: "the database cannot be reached",
  INVITE_QUOTA_EXCEEDED: "the logged-in account has made `invites.perUser.max` invites within `perDays`; `Retry-After` says when one frees",
  ACCOUNT_TOO_NEW: "the logged-in account is younger than `invites.perUser.minAccountAgeDays`",
  APPROVAL_NOT_FOUND: "the moderator link is unknown, has expired or was already used",
  POW_REQUIRED: "the form asks for a proof of work (`antibot.proofOfWork`) and none came with it",
  POW_INVALID: "the proof of work is malformed, forged, expired or was used already",
};

/** What any request that reads or writes the store may meet. */
const STORE = ["STORE_UNAVAILABLE"] as const satisfies ErrorCode[];
/** What any request that writes may meet besides. */
const WRITES = [...STORE, "STORAGE_FULL"] as const satisfies ErrorCode[];
/** What reading a request body may meet. */
const BODY = ["MALFORMED_REQUEST", "BODY_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"] as const satisfies ErrorCode[];
/** What a new username and password may meet (registration and invite acceptance alike). */
const NEW_ACCOUNT = [
  "USERNAME_INVALID", "PASSWORD_TOO_SHORT", "USERNAME_RESERVED", "USERNAME_TAKEN",
  "USERNAME_TAKEN_DOWNSTREAM", "ACCOUNT_SERVER_UNAVAILABLE", "SERVER_BUSY",
] as const satisfies ErrorCode[];

// ---- schemas -------------------------------------------------------------------------------

const Timestamp = Type.String({ format: "date-time" });
const closed = { additionalProperties: false } as const;

const SCHEMAS = {
  ErrorCode: Type.String({
    enum: Object.keys(ERROR_CODES),
    description: Object.entries(ERROR_CODES).map(([code, meaning]) => `- \`${code}\` (${statusOf(code as ErrorCode)}): ${meaning}`).join("\n"),
  }),
  Error: Type.Object({
    error: Type.Unsafe<string>({ $ref: "#/components/schemas/ErrorCode" }),
    message: Type.String({ description: "a short reason a person can read" }),
  }, { ...closed, description: "A refusal, for a client that sends `Accept: application/json`." }),
  Registration: Type.Object({
    username: Type.String(),
    password: Type.String(),
    ip: Type.String({ description: "the end user's address, as the website saw it (IPv4 or IPv6)" }),
    mail: Type.String({ format: "email" }),
    auth_token: Type.String({ description: "one of `register.authTokens`: how the website authenticates (compared in constant time)" }),
    lang: Type.Optional(Type.String({ description: "a BCP 47 tag: the language of the verification mail (and later mail) when `languages` offers it; else the default" })),
    reason: Type.Optional(Type.String({ maxLength: 500, description: "why the person wants an account, shown to moderators when `register.approval` is `manual`" })),
  }, { description: "mod_register_json's registration; the five required fields are strings, `lang` and `reason` optional strings, other fields are ignored." }),
  Verified: Type.Object({
    username: Type.String(),
    alreadyActive: Type.Boolean({ description: "the code had been used already: the account existed before this request" }),
    ready: Type.Optional(Type.Literal(false, { description: "present only while an account server has yet to make the account" })),
    awaitingApproval: Type.Optional(Type.Literal(true, { description: "present when the registration now waits for a moderator (`register.approval: \"manual\"`) instead of being an account" })),
  }, closed),
  AwaitingApproval: Type.Object({
    name: Type.String(),
    status: Type.Literal("awaiting-approval"),
  }, { ...closed, description: "an accepted invite that waits for a moderator (`invites.requireApproval`): nobody is logged in" }),
  ResendAccepted: Type.Object({ status: Type.Literal("accepted") }, { ...closed, description: "the one answer to a resend, whether or not such a registration exists" }),
  PowChallenge: Type.Object({
    parameters: Type.Object({
      algorithm: Type.String(),
      nonce: Type.String(),
      salt: Type.String(),
      expiresAt: Type.Optional(Type.Integer({ description: "seconds since the epoch" })),
    }),
    signature: Type.Optional(Type.String()),
  }, { description: "an ALTCHA challenge (DESIGN §11), signed with a key derived from the service secret, for the widget to solve" }),
  ModInvite: Type.Object({
    id: Type.String({ description: "the invite token (secret: whoever has it may use the invite)" }),
    url: Type.String({ format: "uri", description: "the invite page, `{publicUrl}/invite/{id}`" }),
    handle: Type.String({ description: "a short, non-secret name for the invite (`gatehouse invites list|revoke`)" }),
    uses: Type.Integer({ minimum: 1 }),
    username: Type.Union([Type.String(), Type.Null()], { description: "the only username this invite may create, if bound" }),
    issued_at: Timestamp,
    expires_at: Timestamp,
  }, closed),
  Invite: Type.Object({
    id: Type.String({ description: "the invite token (secret)" }),
    issuer: Type.String({ description: "the issuer's id: an API key's id, or `u{N}` for an account" }),
    issued_at: Timestamp,
    expires_at: Timestamp,
    url: Type.String({ format: "uri" }),
  }, closed),
  InviteInfo: Type.Object({
    issuer: Type.Object({ id: Type.String(), name: Type.String() }, closed),
    issued_at: Timestamp,
    expires_at: Timestamp,
  }, closed),
  Credentials: Type.Object({
    name: Type.String(),
    password: Type.String(),
  }),
  Me: Type.Object({ id: Type.String({ pattern: "^u[0-9]+$" }), name: Type.String() }, closed),
  Health: Type.Object({
    status: Type.Union([Type.Literal("ok"), Type.Literal("unavailable")]),
    reason: Type.Optional(Type.String()),
  }, closed),
} satisfies Record<string, TSchema>;

type SchemaName = keyof typeof SCHEMAS;
const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });

const HEADERS = {
  RetryAfter: { description: "seconds to wait before trying again", required: true, schema: { type: "string", pattern: "^[1-9][0-9]*$" } },
  Location: { description: "the invite page, `{publicUrl}/invite/{token}`", required: true, schema: { type: "string", format: "uri" } },
  SetSession: {
    description: `the session: \`${SESSION_COOKIE}=…; path=/; HttpOnly; SameSite=Strict\`, and \`Secure\` when \`publicUrl\` or the request is HTTPS; 30 days`,
    required: true,
    schema: { type: "string", pattern: `^${SESSION_COOKIE}=` },
  },
  ClearSession: { description: `an expired \`${SESSION_COOKIE}\` cookie, which ends the browser's session`, required: true, schema: { type: "string", pattern: `^${SESSION_COOKIE}=;` } },
  Allow: { description: "the methods the path takes", required: true, schema: { type: "string" } },
  AllowOrigin: { description: "always `*`: the API key is what authorizes", required: true, schema: { const: "*" } },
} as const;
const header = (name: keyof typeof HEADERS) => ({ $ref: `#/components/headers/${name}` });

// ---- responses -----------------------------------------------------------------------------

type Media = Record<string, { schema: object }>;
interface Response { description: string; headers?: Record<string, object>; content?: Media }

const TEXT = { "text/plain": { schema: { type: "string" } } };
const HTML = { "text/html": { schema: { type: "string" } } };
const json = (schema: object): Media => ({ "application/json": { schema } });

/** How an operation's refusals look to a client that does not ask for JSON: a reason, or a page. */
type ErrorStyle = "text" | "page";

function errorBody(codes: readonly ErrorCode[]): object {
  return { allOf: [ref("Error"), { properties: { error: { enum: [...codes] } } }] };
}

/** One response per status the codes map to, each naming exactly the codes it may carry. */
function errorResponses(codes: readonly ErrorCode[], style: ErrorStyle): Record<string, Response> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) byStatus.set(statusOf(code), [...(byStatus.get(statusOf(code)) ?? []), code]);
  const out: Record<string, Response> = {};
  for (const [status, group] of [...byStatus].sort(([a], [b]) => a - b)) {
    const content: Media = { ...(style === "page" ? HTML : TEXT), ...json(errorBody(group)) };
    out[String(status)] = {
      description: group.map((c) => `\`${c}\`: ${ERROR_CODES[c]}`).join("; "),
      ...(status === 429 || status === 503 ? { headers: { "Retry-After": header("RetryAfter") } } : {}),
      content,
    };
  }
  return out;
}

// ---- operations ----------------------------------------------------------------------------

export type HttpMethod = "get" | "post" | "options";

export interface OperationSpec {
  method: HttpMethod;
  /** OpenAPI path template: `{name}` for a parameter, named as the router names it (`:name`). */
  path: string;
  operationId: string;
  tag: "registration" | "verification" | "mod_invites_api" | "invitations" | "sessions" | "invite page" | "moderation" | "proof of work" | "pages" | "operations";
  summary: string;
  description?: string;
  parameters?: object[];
  requestBody?: object;
  security?: Record<string, string[]>[];
  /** What it answers when it does what was asked. */
  responses: Record<string, Response>;
  /** The codes it may refuse with; the error responses are made from them. */
  refusals?: readonly ErrorCode[];
  /** How refusals look to a client that does not ask for JSON (default: a plain-text reason). */
  errors?: ErrorStyle;
}

const pathParam = (name: string, description: string) => ({ name, in: "path", required: true, description, schema: { type: "string" } });
const queryParam = (name: string, description: string, schema: object = { type: "string" }) => ({ name, in: "query", required: false, description, schema });

const API_KEY: Record<string, string[]>[] = [{ apiKeyBearer: [] }, { apiKeyQuery: [] }];

/** Every page takes `?lang=`: the page's language when `languages` offers it (DESIGN §10). */
const LANG = queryParam("lang", "the page's language (a BCP 47 tag among `languages`); else `Accept-Language`, else the first of `languages`");
/** What a public form's proof of work (`antibot.proofOfWork`) may refuse with. */
const POW = ["POW_REQUIRED", "POW_INVALID"] as const satisfies ErrorCode[];

function operations(config: OpenApiConfig): OperationSpec[] {
  const base = config.register.basePath;
  const verify = `${base}verify/`;
  const apiPath = config.invites.apiPath;
  const verifiedAnswer: Response = {
    description: "the account exists (or already did): the success page, or the account as JSON",
    content: { ...HTML, ...json(ref("Verified")) },
  };
  const inviteParams = [
    queryParam("uses", `how many accounts the invite may make (1–${MAX_INVITE_USES}; default 1)`, { type: "string", pattern: "^[0-9]{1,9}$" }),
    queryParam("ttl", `its lifetime in seconds (${MIN_INVITE_TTL_SECONDS}–${MAX_INVITE_TTL_SECONDS}; default \`invites.ttlSeconds\`)`, { type: "string", pattern: "^[0-9]{1,9}$" }),
    queryParam("username", "bind the invite to this one username"),
    queryParam("redirect", "`true`: answer 303 to the invite page instead of 201", { type: "string" }),
    queryParam("key", "the API key as `ID/SECRET`, when not sent as a bearer token"),
  ];
  const modInvite = (method: "get" | "post"): OperationSpec => ({
    method,
    path: apiPath,
    operationId: method === "get" ? "modInvitesApiGet" : "modInvitesApiPost",
    tag: "mod_invites_api",
    summary: `Create an invite (mod_invites_api, ${method.toUpperCase()})`,
    description: method === "post"
      ? "As GET; the parameters may also come as a form or a JSON object in the body (numbers allowed), over those of the query."
      : "Creates an invite for one account (or `uses` accounts) and answers where its page is.",
    parameters: inviteParams,
    ...(method === "post" ? {
      requestBody: {
        required: false,
        content: {
          "application/x-www-form-urlencoded": { schema: { type: "object", additionalProperties: { type: "string" } } },
          "application/json": { schema: { type: "object", additionalProperties: { type: ["string", "number", "boolean", "null"] } } },
        },
      },
    } : {}),
    security: API_KEY,
    responses: {
      "201": {
        description: "the invite was made",
        headers: { Location: header("Location"), "Access-Control-Allow-Origin": header("AllowOrigin") },
        content: json(ref("ModInvite")),
      },
      "303": {
        description: "the invite was made (`redirect=true`): go to its page",
        headers: { Location: header("Location"), "Access-Control-Allow-Origin": header("AllowOrigin") },
        content: TEXT,
      },
    },
    // GET reads no body: a bad parameter is all that can be malformed.
    refusals: ["API_KEY_INVALID", ...(method === "post" ? BODY : ["MALFORMED_REQUEST" as const]), "USERNAME_INVALID", "USERNAME_RESERVED", ...WRITES],
  });

  const ops: OperationSpec[] = [
    {
      method: "post",
      path: base,
      operationId: "registerAccount",
      tag: "registration",
      summary: "Register an account, pending its mail verification (mod_register_json)",
      description: [
        `The body is the base64 (standard or URL-safe, padded or not, whitespace ignored) of a UTF-8 JSON \`Registration\`,`,
        "whatever its Content-Type says (mod_register_json's clients send various ones, or none); sent as `application/json`, it is that JSON itself. The path is also served without its trailing slash, as Prosody does.",
        "Any other method is answered 405 with `Allow: POST`. The checks run in DESIGN §3's order and the first failure answers.",
        "The `auth_token` inside the body is what authenticates the website; a peer that sends more than 10 bad ones a minute gets 429.",
        "Refusals are a plain-text reason, or `Error` JSON for `Accept: application/json`.",
      ].join(" "),
      requestBody: {
        required: true,
        content: {
          "application/encoded": { schema: { type: "string", contentEncoding: "base64", contentMediaType: "application/json", contentSchema: ref("Registration") } },
          "application/json": { schema: ref("Registration") },
        },
      },
      responses: { "200": { description: "the registration waits for verification: the body is its verification token", content: TEXT } },
      refusals: [
        "HTTPS_REQUIRED", ...BODY, "AUTH_TOKEN_INVALID", "TOO_MANY_ATTEMPTS", "IP_BLACKLISTED", "MAIL_FILTERED", "MAIL_DISPOSABLE",
        ...NEW_ACCOUNT, "USERNAME_PENDING", "THROTTLED", "MAIL_TAKEN", ...WRITES,
      ],
    },
    {
      method: "get",
      path: verify,
      operationId: "showVerifyForm",
      tag: "verification",
      summary: "The form that asks for a verification code (Prosody's page)",
      parameters: [LANG],
      responses: { "200": { description: "the form", content: HTML } },
      errors: "page",
    },
    {
      method: "post",
      path: verify,
      operationId: "verifyByForm",
      tag: "verification",
      summary: "Complete a registration with the code typed into the form",
      requestBody: {
        required: true,
        content: {
          "application/x-www-form-urlencoded": { schema: { type: "object", properties: { uuid: { type: "string" }, token: { type: "string" }, altcha: { type: "string" } } } },
          "application/json": { schema: { type: "object", properties: { uuid: { type: "string" }, token: { type: "string" }, altcha: { type: "string" } } } },
        },
      },
      responses: { "200": verifiedAnswer },
      refusals: ["TOKEN_UNKNOWN", ...BODY, ...POW, "USERNAME_TAKEN_DOWNSTREAM", ...WRITES],
      errors: "page",
    },
    {
      method: "get",
      path: `${verify}resend`,
      operationId: "showResendForm",
      tag: "verification",
      summary: "The form that asks for the verification mail again (by username and address)",
      parameters: [LANG],
      responses: { "200": { description: "the form", content: HTML } },
      errors: "page",
    },
    {
      method: "post",
      path: `${verify}resend`,
      operationId: "resendVerification",
      tag: "verification",
      summary: "Send the verification mail again, with a new link that replaces the old one",
      description: [
        "The answer is the same whether or not a pending registration has this username and address, and past `register.resendLimit`;",
        "only the per-address limit (which does not depend on any registration) answers 429.",
      ].join(" "),
      parameters: [LANG],
      requestBody: {
        required: true,
        content: {
          "application/x-www-form-urlencoded": { schema: { type: "object", properties: { username: { type: "string" }, mail: { type: "string" }, altcha: { type: "string" } } } },
          "application/json": { schema: { type: "object", properties: { username: { type: "string" }, mail: { type: "string" }, altcha: { type: "string" } } } },
        },
      },
      responses: { "200": { description: "the one answer: if such a registration waits, a new link is on its way", content: { ...HTML, ...json(ref("ResendAccepted")) } } },
      refusals: ["CROSS_SITE_REQUEST", ...BODY, ...POW, "TOO_MANY_ATTEMPTS", ...WRITES],
      errors: "page",
    },
    {
      method: "get",
      path: `${verify}{token}`,
      operationId: "confirmVerification",
      tag: "verification",
      summary: "The mailed link: a page naming the account, with one button that completes it",
      description: "Changes nothing, because mail scanners fetch links; a code already used shows the success page.",
      parameters: [pathParam("token", "the verification token"), LANG],
      responses: { "200": { description: "the confirm page (or the success page for a code already used)", content: HTML } },
      refusals: ["TOKEN_UNKNOWN", ...STORE],
      errors: "page",
    },
    {
      method: "post",
      path: `${verify}{token}`,
      operationId: "completeVerification",
      tag: "verification",
      summary: "Complete a registration: the account is made",
      description: "Using a code just used again answers success with `alreadyActive: true`.",
      parameters: [pathParam("token", "the verification token")],
      responses: { "200": verifiedAnswer },
      refusals: ["TOKEN_UNKNOWN", "USERNAME_TAKEN_DOWNSTREAM", ...WRITES],
      errors: "page",
    },
    {
      method: "options",
      path: apiPath,
      operationId: "modInvitesApiPreflight",
      tag: "mod_invites_api",
      summary: "CORS preflight",
      responses: {
        "204": {
          description: "any origin may call the API",
          headers: {
            "Access-Control-Allow-Origin": header("AllowOrigin"),
            "Access-Control-Allow-Methods": { required: true, schema: { const: "OPTIONS, GET, POST" } },
            "Access-Control-Allow-Headers": { required: true, schema: { const: "Content-Type, Authorization" } },
          },
        },
      },
    },
    modInvite("get"),
    modInvite("post"),
    {
      method: "post",
      path: "/api/invite",
      operationId: "createInvite",
      tag: "invitations",
      summary: "Create an invite (pilcrow's shape)",
      description: "With an API key, or the session cookie of a logged-in account (then only from this site's own pages).",
      requestBody: { required: false, content: json({ type: "object" }) },
      security: [...API_KEY, { sessionCookie: [] }],
      responses: { "200": { description: "the invite", content: json(ref("Invite")) } },
      refusals: ["API_KEY_INVALID", "UNAUTHENTICATED", "CROSS_SITE_REQUEST", "INVITE_QUOTA_EXCEEDED", "ACCOUNT_TOO_NEW", ...BODY, ...WRITES],
    },
    {
      method: "get",
      path: "/api/invite/{id}",
      operationId: "getInvite",
      tag: "invitations",
      summary: "Who issued an invite, and until when it holds",
      parameters: [pathParam("id", "the invite token")],
      responses: { "200": { description: "the invite can be used", content: json(ref("InviteInfo")) } },
      refusals: ["INVITE_NOT_FOUND", ...STORE],
    },
    {
      method: "post",
      path: "/api/invite/{id}",
      operationId: "acceptInvite",
      tag: "invitations",
      summary: "Accept an invite: make the account and log it in",
      description: "Of concurrent accepts of a one-use invite exactly one wins; a refused name leaves the invite usable. Used, expired and revoked invites are 404 here.",
      parameters: [pathParam("id", "the invite token")],
      requestBody: { required: true, content: json(ref("Credentials")) },
      responses: {
        "204": { description: "the account exists; the response logs it in", headers: { "Set-Cookie": header("SetSession") } },
        "202": { description: "the account waits for a moderator (`invites.requireApproval`); nobody is logged in", content: json(ref("AwaitingApproval")) },
      },
      refusals: ["INVITE_NOT_FOUND", "INVITE_NAME_MISMATCH", ...NEW_ACCOUNT, ...BODY, ...WRITES],
    },
    {
      method: "post",
      path: "/api/auth/login",
      operationId: "login",
      tag: "sessions",
      summary: "Log in",
      requestBody: { required: true, content: json(ref("Credentials")) },
      responses: { "204": { description: "logged in", headers: { "Set-Cookie": header("SetSession") } } },
      refusals: ["LOGIN_FAILED", "TOO_MANY_ATTEMPTS", "SERVER_BUSY", ...BODY, ...WRITES],
    },
    {
      method: "post",
      path: "/api/auth/logout",
      operationId: "logout",
      tag: "sessions",
      summary: "Log out: the session ends, with or without one",
      security: [{ sessionCookie: [] }, {}],
      responses: { "204": { description: "no session any more", headers: { "Set-Cookie": header("ClearSession") } } },
      refusals: ["CROSS_SITE_REQUEST", ...WRITES],
    },
    {
      method: "get",
      path: "/api/me",
      operationId: "me",
      tag: "sessions",
      summary: "The logged-in account",
      security: [{ sessionCookie: [] }],
      responses: { "200": { description: "the account of the session", content: json(ref("Me")) } },
      refusals: ["UNAUTHENTICATED", ...WRITES],
    },
    {
      method: "get",
      path: "/invite",
      operationId: "invitePageProsody",
      tag: "invite page",
      summary: "The invite page, as Prosody's links name it: `/invite?TOKEN`",
      parameters: [{ name: "TOKEN", in: "query", required: true, description: "the whole query string is the invite token", schema: { type: "string" }, allowEmptyValue: true }],
      responses: { "200": { description: "who invited you, and a signup form that works without JavaScript", content: HTML } },
      refusals: ["INVITE_NOT_FOUND", "INVITE_GONE", ...STORE],
      errors: "page",
    },
    {
      method: "get",
      path: "/invite/{token}",
      operationId: "invitePage",
      tag: "invite page",
      summary: "The invite page: who invited you, and a signup form",
      parameters: [pathParam("token", "the invite token"), LANG],
      responses: { "200": { description: "the page", content: HTML } },
      refusals: ["INVITE_NOT_FOUND", "INVITE_GONE", ...STORE],
      errors: "page",
    },
    {
      method: "post",
      path: "/invite/{token}",
      operationId: "acceptInvitePage",
      tag: "invite page",
      summary: "The invite page's form: make the account",
      description: "A refusal the person can fix (the name, the password) shows the form again with the reason, at that refusal's status.",
      parameters: [pathParam("token", "the invite token")],
      requestBody: {
        required: true,
        content: {
          "application/x-www-form-urlencoded": {
            schema: { type: "object", properties: { username: { type: "string" }, password: { type: "string" }, reason: { type: "string" }, altcha: { type: "string" } } },
          },
        },
      },
      responses: {
        "200": {
          description: "the welcome page; the response logs the account in, unless it waits for a moderator (`invites.requireApproval`)",
          headers: { "Set-Cookie": { ...HEADERS.SetSession, required: false } },
          content: HTML,
        },
      },
      refusals: ["INVITE_NOT_FOUND", "INVITE_GONE", "INVITE_NAME_MISMATCH", "CROSS_SITE_REQUEST", ...NEW_ACCOUNT, ...BODY, ...POW, ...WRITES],
      errors: "page",
    },
    ...(["approve", "reject"] as const).flatMap((decision): OperationSpec[] => [
      {
        method: "get",
        path: `${base}approval/{token}/${decision}`,
        operationId: `${decision}Page`,
        tag: "moderation",
        summary: `The moderator mail's ${decision} link: the waiting registration and one button`,
        description: "Changes nothing, because mail scanners fetch links; the button POSTs to the same address.",
        parameters: [pathParam("token", "the moderator link's token"), LANG],
        responses: { "200": { description: "the page", content: HTML } },
        refusals: ["APPROVAL_NOT_FOUND", ...STORE],
        errors: "page",
      },
      {
        method: "post",
        path: `${base}approval/{token}/${decision}`,
        operationId: decision,
        tag: "moderation",
        summary: decision === "approve" ? "Approve a waiting registration: the account is made" : "Reject a waiting registration: it is removed and the person mailed",
        parameters: [pathParam("token", "the moderator link's token"), LANG],
        requestBody: {
          required: false,
          content: { "application/x-www-form-urlencoded": { schema: { type: "object", properties: decision === "reject" ? { reason: { type: "string" } } : {} } } },
        },
        responses: { "200": { description: "what was decided", content: HTML } },
        refusals: ["APPROVAL_NOT_FOUND", ...BODY, ...WRITES],
        errors: "page",
      },
    ]),
    {
      method: "get",
      path: POW_CHALLENGE_PATH,
      operationId: "powChallenge",
      tag: "proof of work",
      summary: "A new ALTCHA challenge for the widget on gatehouse's own forms",
      responses: { "200": { description: "the challenge, signed, expiring in minutes", content: json(ref("PowChallenge")) } },
    },
    {
      method: "get",
      path: "/_gatehouse/static/{version}/{name}",
      operationId: "staticAsset",
      tag: "proof of work",
      summary: "The widget's files, served by gatehouse itself (no third party)",
      parameters: [pathParam("version", "the widget's version"), pathParam("name", "the file")],
      responses: {
        "200": {
          description: "the file, cached for a year",
          content: { "text/javascript": { schema: { type: "string" } }, "text/css": { schema: { type: "string" } } },
        },
      },
      refusals: ["NOT_FOUND"],
    },
    {
      method: "get",
      path: "/",
      operationId: "home",
      tag: "pages",
      summary: "For a browser (`Accept: text/html`): what this place is, and the way to the verify form",
      parameters: [LANG],
      responses: { "200": { description: "the page", content: HTML } },
      refusals: ["NOT_FOUND"],
    },
    {
      method: "get",
      path: "/healthz",
      operationId: "health",
      tag: "operations",
      summary: "Whether the store can be read and written",
      responses: {
        "200": { description: "healthy", content: json(ref("Health")) },
        "503": { description: "the store is unreachable, full, or cannot be written", headers: { "Retry-After": header("RetryAfter") }, content: json(ref("Health")) },
      },
    },
    ...(config.metrics.enabled && !config.metrics.listen ? [{
      method: "get",
      path: "/metrics",
      operationId: "metrics",
      tag: "operations",
      summary: "Prometheus metrics (here unless `metrics.listen` moves them or `metrics.enabled` is off)",
      responses: { "200": { description: "Prometheus text exposition format 0.0.4", content: TEXT } },
    } satisfies OperationSpec] : []),
    {
      method: "get",
      path: "/openapi.json",
      operationId: "openapi",
      tag: "operations",
      summary: "This description",
      responses: { "200": { description: "OpenAPI 3.1", content: json({ type: "object", required: ["openapi"] }) } },
    },
  ];
  return ops;
}

// ---- the document --------------------------------------------------------------------------

const TAGS = [
  { name: "registration", description: "mod_register_json: a website registers accounts for its users" },
  { name: "verification", description: "the mailed link and Prosody's verify form" },
  { name: "mod_invites_api", description: "Prosody's mod_invites_api: an API key mints invites" },
  { name: "invitations", description: "the invitation API in pilcrow's shape" },
  { name: "sessions", description: "login and the identity cookie, for the invitation API" },
  { name: "invite page", description: "the page an invite link opens" },
  { name: "moderation", description: "the moderator mail's approve and reject links (`register.approval`, `invites.requireApproval`)" },
  { name: "proof of work", description: "ALTCHA challenges and the widget for gatehouse's own forms (`antibot.proofOfWork`)" },
  { name: "pages", description: "pages for a browser that asks gatehouse itself" },
  { name: "operations", description: "health, metrics and this description" },
];

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}

/** On a path item: the path is served without its trailing slash too (a checker must know; OpenAPI cannot say it). */
export const TRAILING_SLASH_OPTIONAL = "x-trailing-slash-optional";

export function buildOpenApi(config: OpenApiConfig): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations(config)) {
    const { method, path, tag, refusals = [], errors = "text", responses, ...rest } = op;
    (paths[path] ??= {})[method] = {
      ...rest,
      tags: [tag],
      responses: { ...responses, ...errorResponses(refusals, errors) },
    };
  }
  // Prosody serves its servlet with and without the trailing slash; the router alone would not.
  const bare = config.register.basePath.replace(/\/$/, "");
  if (bare !== "") paths[config.register.basePath]![TRAILING_SLASH_OPTIONAL] = true;
  return {
    openapi: "3.1.0",
    info: {
      title: "gatehouse",
      version: packageVersion(),
      summary: "A self-hosted signup gate: registration with mail verification, and invitations",
      description: [
        "Every refusal has a code (`ErrorCode`) and a status that follows from it. A client that sends `Accept: application/json` gets",
        "`{\"error\": CODE, \"message\"}`; otherwise pages answer HTML and the rest a plain-text reason.",
        "A path that exists answers other methods 405 with `Allow`; an unknown path answers 404 (`NotFound`, `MethodNotAllowed` below).",
        "Any 429 or 503 carries `Retry-After`. Every response carries `X-Request-Id`, `X-Content-Type-Options: nosniff` and",
        "`Referrer-Policy: no-referrer`; pages send a Content-Security-Policy.",
      ].join(" "),
      license: { name: "MIT", identifier: "MIT" },
    },
    servers: [{ url: config.publicUrl, description: "`publicUrl`" }],
    tags: TAGS,
    paths,
    components: {
      schemas: SCHEMAS,
      headers: HEADERS,
      responses: {
        NotFound: { description: "no such path", content: { ...TEXT, ...HTML, ...json(errorBody(["NOT_FOUND"])) } },
        MethodNotAllowed: { description: "the path does not take this method", headers: { Allow: header("Allow") }, content: { ...TEXT, ...HTML, ...json(errorBody(["METHOD_NOT_ALLOWED"])) } },
      },
      securitySchemes: {
        apiKeyBearer: { type: "http", scheme: "bearer", bearerFormat: "ID/SECRET", description: "an API key from `gatehouse keys create`, as `Authorization: Bearer ID/SECRET`" },
        apiKeyQuery: { type: "apiKey", in: "query", name: "key", description: "the same API key as `?key=ID/SECRET`" },
        sessionCookie: { type: "apiKey", in: "cookie", name: SESSION_COOKIE, description: "the session a login or an accepted invite sets" },
      },
    },
  };
}

/** The description as text, pretty-printed as docs/openapi.json keeps it. */
export function openApiText(config: OpenApiConfig): string {
  return `${JSON.stringify(buildOpenApi(config), null, 2)}\n`;
}

/** The served bytes, made once per public URL (the only key it depends on that may change while running). */
export function openApiJson(): (config: OpenApiConfig) => Buffer {
  let made: { publicUrl: string; bytes: Buffer } | undefined;
  return (config) => {
    if (made?.publicUrl !== config.publicUrl) made = { publicUrl: config.publicUrl, bytes: Buffer.from(openApiText(config)) };
    return made.bytes;
  };
}
