import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import Router from "@koa/router";
import { compileErrors, validate } from "@readme/openapi-parser";
import { simpleParser } from "mailparser";
import type supertest from "supertest";
import { loadConfig, parseConfig } from "../../src/config.ts";
import { applyConfig } from "../../src/context.ts";
import { exampleOpenApiText, OPENAPI_FILE } from "../../scripts/openapi.ts";
import { encode, postRegistration, registration, testConfig, withHarness, type Harness } from "../helpers/harness.ts";
import { client, createKey, identityCookie, PASSWORD, tokenOf } from "../helpers/invites.ts";
import { OpenApiChecker, routesWithoutOperation, type Exchange } from "../helpers/openapi.ts";

// The OpenAPI description (src/http/openapi.ts) against the service itself: it must be a valid
// OpenAPI 3.1 document, name every route the app mounts, and allow exactly what the app answers.

type Doc = ConstructorParameters<typeof OpenApiChecker>[0];

async function servedDoc(h: Pick<Harness, "app">): Promise<{ text: string; doc: Doc }> {
  const res = await client(h).get("/openapi.json");
  assert.equal(res.status, 200, res.text);
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  return { text: res.text, doc: JSON.parse(res.text) as Doc };
}

async function openApiProblems(doc: unknown): Promise<string | null> {
  const result = await validate(structuredClone(doc) as Parameters<typeof validate>[0]);
  return result.valid ? null : compileErrors(result);
}

/**
 * Responses nothing in this file provokes: an outage of the store, a full disk, a full Argon2 queue,
 * an account server that is down or made the name meanwhile. test/e2e and test/accounts make them;
 * a run with GATEHOUSE_OPENAPI_RECORD records those that go through the harness. A documented
 * response is excused only when every code it may carry is one of these.
 */
const MADE_ELSEWHERE = new Set(["STORE_UNAVAILABLE", "STORAGE_FULL", "SERVER_BUSY", "ACCOUNT_SERVER_UNAVAILABLE", "USERNAME_TAKEN_DOWNSTREAM"]);
const HEALTH_DOWN = "GET /healthz 503";

/** The codes a documented error response may carry, from its JSON schema. */
function codesOf(doc: Doc, key: string): string[] {
  const [method, path, status] = key.split(" ") as [string, string, string];
  const response = (doc.paths[path]![method.toLowerCase()] as { responses: Record<string, { content?: Record<string, { schema?: { allOf?: { properties?: { error?: { enum?: string[] } } }[] } }> }> }).responses[status]!;
  return response.content?.["application/json"]?.schema?.allOf?.[1]?.properties?.error?.enum ?? [];
}

/** An account server on loopback for `accounts.provision` (type http): names starting "taken" are made elsewhere meanwhile, "down" ones cannot be checked. */
async function startAccountServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const { username = "" } = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as { username?: string };
      if (req.url === "/check") res.writeHead(username.startsWith("down") ? 500 : 200).end();
      else res.writeHead(username.startsWith("taken") ? 409 : 201).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** Sends one request and insists on its status, so the recorded run provokes what it means to. */
async function expectStatus(req: supertest.Test, status: number, what: string): Promise<supertest.Response> {
  const res = await req;
  assert.equal(res.status, status, `${what}: ${res.status} ${res.text.slice(0, 200)}`);
  return res;
}

const BIG = "x".repeat(70 * 1024);
const JSON_ACCEPT = "application/json";

async function registrationRun(h: Harness): Promise<void> {
  const base = h.config.register.basePath;
  const asJson = (value: unknown) => postRegistration(h, value).set("Accept", JSON_ACCEPT);
  const first = await expectStatus(postRegistration(h, registration()), 200, "a registration");
  await expectStatus(h.http.post(base.replace(/\/$/, "")).send(encode(registration())), 200, "a registration at the bare path");
  await expectStatus(asJson("not base64!"), 400, "not base64, JSON asked");
  await expectStatus(postRegistration(h, "{}"), 400, "not a registration, text");
  await expectStatus(asJson(registration({ password: "short" })), 400, "a short password");
  await expectStatus(asJson(registration({ username: "a b" })), 406, "a name with a space");
  await expectStatus(asJson(registration({ username: "admin" })), 403, "a reserved name");
  await expectStatus(asJson(registration({ ip: "203.0.113.7" })), 403, "a blacklisted address");
  await expectStatus(asJson(registration({ username: "user-pending-1" })), 200, "a name that will be pending");
  await expectStatus(asJson(registration({ username: "user-pending-1" })), 401, "a pending name");
  const done = await expectStatus(h.http.post(`${base}verify/${encodeURIComponent(first.text)}`).set("Accept", JSON_ACCEPT), 200, "verified");
  await expectStatus(asJson(registration({ username: (done.body as { username: string }).username })), 409, "a taken name");
  await expectStatus(h.http.post(base).set("Content-Type", "application/encoded").send(BIG), 413, "a body over 64 KiB");
  await expectStatus(h.http.post(base).set("Content-Encoding", "gzip").send("x"), 415, "a compressed body");
  await expectStatus(asJson(registration({ ip: "198.51.100.250" })), 200, "a first registration from one address");
  const throttled = await expectStatus(asJson(registration({ ip: "198.51.100.250" })), 503, "a second from the same address");
  assert.ok(throttled.headers["retry-after"], "Retry-After on 503");
  await expectStatus(asJson(registration({ username: "downstream1" })), 503, "an account server that cannot say whether the name is free");
  for (let i = 0; i < 10; i++) await expectStatus(asJson(registration({ auth_token: "wrong" })), 401, `bad auth_token ${i + 1}`);
  await expectStatus(asJson(registration({ auth_token: "wrong" })), 429, "one bad auth_token too many");
  await expectStatus(h.http.get(base), 405, "GET on the registration path");
  await expectStatus(h.http.get("/no/such/path").set("Accept", JSON_ACCEPT), 404, "an unknown path");
  await expectStatus(h.http.get("/no/such/path"), 404, "an unknown path, text");
}

async function verificationRun(h: Harness): Promise<void> {
  const verify = `${h.config.register.basePath}verify/`;
  const token = async (fields = {}) => (await expectStatus(postRegistration(h, registration(fields)), 200, "a registration to verify")).text;
  await expectStatus(h.http.get(verify), 200, "the verify form");
  await expectStatus(h.http.post(verify).type("form").send({ uuid: await token() }), 200, "the form with a right code");
  await expectStatus(h.http.post(verify).type("form").send({ uuid: "nope" }), 404, "the form with a wrong code");
  await expectStatus(h.http.post(verify).set("Accept", JSON_ACCEPT).send({ token: "nope" }), 404, "a wrong code, JSON");
  await expectStatus(h.http.post(verify).set("Content-Type", "application/json").send("[1]"), 400, "JSON that is not an object");
  await expectStatus(h.http.post(verify).type("form").send(`uuid=${BIG}`), 413, "a form over 64 KiB");
  await expectStatus(h.http.post(verify).set("Content-Encoding", "gzip").type("form").send("uuid=x"), 415, "a compressed form");
  const link = await token();
  await expectStatus(h.http.get(`${verify}${encodeURIComponent(link)}`), 200, "the mailed link's page");
  await expectStatus(h.http.get(`${verify}nope`), 404, "the page of a wrong link");
  await expectStatus(h.http.post(`${verify}${encodeURIComponent(link)}`).set("Accept", JSON_ACCEPT), 200, "the page's button, JSON");
  await expectStatus(h.http.post(`${verify}${encodeURIComponent(link)}`), 200, "the button again: already active");
  await expectStatus(h.http.post(`${verify}nope`), 404, "the button of a wrong link");
  await expectStatus(h.http.post(`${verify}${encodeURIComponent(await token({ username: "taken1" }))}`), 409, "a name the account server made meanwhile");
  await expectStatus(h.http.post(verify).type("form").send({ uuid: await token({ username: "taken2" }) }), 409, "the same, by the form");
  await expectStatus(h.http.delete(verify), 405, "DELETE on the verify form");

  const resend = `${verify}resend`;
  const again = { username: "resent1", mail: "resent1@example.org" };
  await token(again);
  await expectStatus(h.http.get(resend), 200, "the resend form");
  await expectStatus(h.http.post(resend).type("form").send(again), 200, "a resend");
  await expectStatus(h.http.post(resend).set("Accept", JSON_ACCEPT).send({ username: "nobody", mail: "nobody@example.org" }), 200, "a resend for nobody, JSON");
  await expectStatus(h.http.post(resend).type("form").send({ mail: again.mail }), 400, "a resend without a username");
  await expectStatus(h.http.post(resend).type("form").set("Sec-Fetch-Site", "cross-site").send(again), 403, "a resend from another site");
  await expectStatus(h.http.post(resend).type("form").send(`username=${BIG}`), 413, "a resend over 64 KiB");
  await expectStatus(h.http.post(resend).set("Content-Encoding", "gzip").type("form").send("username=x"), 415, "a compressed resend");
  let status = 200;
  for (let i = 0; i < 10 && status === 200; i++) status = (await h.http.post(resend).type("form").send(again)).status;
  await expectStatus(h.http.post(resend).type("form").send(again), 429, "resends for one address past its limit");
}

const MODERATOR = "moderator@example.org";
const MODERATION = { register: { approval: "manual" as const, moderators: [MODERATOR] }, invites: { requireApproval: true }, antibot: { proofOfWork: "always" as const } };

/** The approval links of every moderator mail so far, oldest first, as paths. */
async function moderatorLinks(h: Harness): Promise<{ approve: string; reject: string }[]> {
  await h.outbox.drain();
  const mails = await Promise.all(h.smtp.sink.received.filter((m) => m.to.includes(MODERATOR)).map((m) => simpleParser(m.raw)));
  return mails.map((mail) => {
    const approve = /^Approve: (\S+)$/m.exec(mail.text ?? "")?.[1];
    const reject = /^Reject: +(\S+)$/m.exec(mail.text ?? "")?.[1];
    assert.ok(approve && reject, `links in the moderator mail:\n${mail.text}`);
    return { approve: new URL(approve).pathname, reject: new URL(reject).pathname };
  });
}

/** Manual approval, its moderator links, an invite that waits, and the proof of work on the forms. */
async function moderationRun(h: Harness): Promise<void> {
  const base = h.config.register.basePath;
  const verify = `${base}verify/`;
  for (const username of ["waiting1", "waiting2"]) {
    const fields = { ...registration({ username, mail: `${username}@example.org` }), reason: "I run the local choir", lang: "de" };
    const made = await expectStatus(postRegistration(h, fields), 200, "a registration with a reason and a language");
    const done = await expectStatus(h.http.post(`${verify}${encodeURIComponent(made.text)}`).set("Accept", JSON_ACCEPT), 200, "a verification that now waits");
    assert.equal((done.body as { awaitingApproval?: boolean }).awaitingApproval, true);
  }
  const [first, second] = await moderatorLinks(h);
  assert.ok(first && second);
  await expectStatus(h.http.get(first.approve), 200, "the approve link's page");
  await expectStatus(h.http.get(first.reject), 200, "the reject link's page");
  await expectStatus(h.http.post(first.reject).type("form").send({ reason: "not a member" }), 200, "rejecting");
  await expectStatus(h.http.post(second.approve), 200, "approving");
  await expectStatus(h.http.post(second.approve), 404, "approving again");
  for (const decision of ["approve", "reject"]) {
    const link = `${base}approval/nope/${decision}`;
    await expectStatus(h.http.get(link), 404, `an unknown ${decision} link`);
    await expectStatus(h.http.post(link).type("form").send({ reason: "no" }), 404, `${decision} by an unknown link`);
    await expectStatus(h.http.post(link).type("form").send(`reason=${BIG}`), 413, `${decision} with a form over 64 KiB`);
    await expectStatus(h.http.post(link).set("Content-Encoding", "gzip").type("form").send("reason=x"), 415, `${decision} with a compressed form`);
    await expectStatus(h.http.post(link).set("Content-Type", "application/json").send("[1]"), 400, `${decision} with JSON that is not an object`);
  }

  const { key } = await createKey(h, "moderation key");
  const invite = (await expectStatus(client(h).post("/api/invite").set("Authorization", `Bearer ${key}`).set("Accept", JSON_ACCEPT), 200, "an invite")).body as { id: string };
  await expectStatus(client(h).post(`/api/invite/${encodeURIComponent(invite.id)}`).set("Accept", JSON_ACCEPT).send({ name: "waiting3", password: PASSWORD }), 202, "an accept that waits for a moderator");

  await expectStatus(client(h).get("/_gatehouse/pow/challenge"), 200, "a proof-of-work challenge");
  const form = await expectStatus(h.http.get(verify), 200, "the verify form with its widget");
  const script = /<script[^>]+src="(\/_gatehouse\/static\/[^"]+)"/.exec(form.text)?.[1];
  assert.ok(script, "the widget's script on the form");
  await expectStatus(client(h).get(script), 200, "the widget's script");
  await expectStatus(client(h).get("/_gatehouse/static/0/nope.js"), 404, "a file that is not there");
  await expectStatus(h.http.post(verify).type("form").send({ uuid: "x" }), 400, "the verify form without its proof of work");
  await expectStatus(h.http.post(verify).type("form").send({ uuid: "x", altcha: "bm90IGEgc29sdXRpb24=" }), 403, "a forged proof of work");
}

async function modInvitesRun(h: Harness): Promise<void> {
  const api = h.config.invites.apiPath;
  const { key } = await createKey(h, "mod key");
  const bearer = (req: supertest.Test) => req.set("Authorization", `Bearer ${key}`);
  await expectStatus(client(h).options(api), 204, "a preflight");
  const made = await expectStatus(client(h).get(api).query({ key }), 201, "an invite by GET");
  assert.ok(made.headers["location"]);
  await expectStatus(client(h).get(api).query({ key, redirect: "true" }), 303, "an invite by GET, redirected");
  await expectStatus(client(h).get(api), 403, "no key");
  await expectStatus(client(h).get(api).set("Accept", JSON_ACCEPT).query({ key: "nope/nope" }), 403, "a wrong key, JSON");
  await expectStatus(client(h).get(api).set("Accept", JSON_ACCEPT).query({ key, uses: "many" }), 400, "uses that is not a number");
  await expectStatus(client(h).get(api).query({ key, username: "a b" }), 406, "a bound name with a space");
  await expectStatus(bearer(client(h).post(api)).set("Accept", JSON_ACCEPT).send({ username: "a b" }), 406, "the same, by POST");
  await expectStatus(bearer(client(h).post(api)).send({ uses: 2, username: "bound1" }), 201, "an invite by POST with JSON");
  await expectStatus(bearer(client(h).post(api)).type("form").send({ redirect: "true" }), 303, "an invite by POST with a form, redirected");
  await expectStatus(client(h).post(api).set("Accept", JSON_ACCEPT), 403, "POST without a key");
  await expectStatus(bearer(client(h).post(api)).set("Accept", JSON_ACCEPT).send({ ttl: 1 }), 400, "a ttl too short");
  await expectStatus(bearer(client(h).post(api)).type("form").send(`x=${BIG}`), 413, "a body over 64 KiB");
  await expectStatus(bearer(client(h).post(api)).set("Content-Encoding", "gzip").type("form").send("uses=1"), 415, "a compressed body");
}

async function invitationApiRun(h: Harness): Promise<void> {
  const { key } = await createKey(h, "api key");
  const bearer = (req: supertest.Test) => req.set("Authorization", `Bearer ${key}`).set("Accept", JSON_ACCEPT);
  const newInvite = async () => ((await expectStatus(bearer(client(h).post("/api/invite")), 200, "an invite")).body as { id: string }).id;
  await expectStatus(client(h).post("/api/invite").set("Accept", JSON_ACCEPT), 401, "no credential");
  await expectStatus(client(h).post("/api/invite"), 401, "no credential, text");
  await expectStatus(client(h).post("/api/invite").set("Authorization", "Bearer nope/nope").set("Accept", JSON_ACCEPT), 403, "a wrong key");
  await expectStatus(bearer(client(h).post("/api/invite")).set("Content-Type", "text/plain").send("hello"), 415, "a body that is not JSON");
  await expectStatus(bearer(client(h).post("/api/invite")).set("Content-Type", "application/json").send("{"), 400, "broken JSON");
  await expectStatus(bearer(client(h).post("/api/invite")).set("Content-Type", "application/json").send(`"${BIG}"`), 413, "a body over 64 KiB");

  const id = await newInvite();
  const at = `/api/invite/${encodeURIComponent(id)}`;
  await expectStatus(client(h).get(at).set("Accept", JSON_ACCEPT), 200, "an invite's description");
  await expectStatus(client(h).get("/api/invite/nope").set("Accept", JSON_ACCEPT), 404, "an unknown invite");
  const acceptWith = (body: object) => client(h).post(at).set("Accept", JSON_ACCEPT).send(body);
  await expectStatus(acceptWith({ name: "x", password: "short" }), 400, "a short password");
  await expectStatus(acceptWith({ name: "a b", password: PASSWORD }), 406, "a name with a space");
  await expectStatus(acceptWith({ name: "admin", password: PASSWORD }), 403, "a reserved name");
  await expectStatus(acceptWith({ name: "downstream2", password: PASSWORD }), 503, "an account server that cannot say whether the name is free");
  await expectStatus(client(h).post(at).type("form").send({ name: "f", password: PASSWORD }), 415, "a form");
  await expectStatus(client(h).post(at).set("Content-Type", "application/json").send(`"${BIG}"`), 413, "a body over 64 KiB");
  const accepted = await expectStatus(acceptWith({ name: "anna", password: PASSWORD }), 204, "accepting");
  const cookie = identityCookie(accepted)!.pair;
  await expectStatus(acceptWith({ name: "anna2", password: PASSWORD }), 404, "a used invite");
  await expectStatus(client(h).post(`/api/invite/${encodeURIComponent(await newInvite())}`).send({ name: "anna", password: PASSWORD }), 409, "a taken name");
  const bound = (await expectStatus(client(h).get(h.config.invites.apiPath).query({ key, username: "bound2" }), 201, "a bound invite")).body as { id: string };
  await expectStatus(client(h).post(`/api/invite/${encodeURIComponent(bound.id)}`).send({ name: "other", password: PASSWORD }), 403, "another name than the bound one");

  await expectStatus(client(h).post("/api/invite").set("Cookie", cookie).set("Accept", JSON_ACCEPT), 200, "an invite by a logged-in account");
  await expectStatus(client(h).post("/api/invite").set("Cookie", cookie).set("Sec-Fetch-Site", "cross-site"), 403, "an invite from another site");
  await expectStatus(client(h).post("/api/invite").set("Cookie", cookie).set("Accept", JSON_ACCEPT), 429, "an invite over the account's quota");
  await expectStatus(client(h).get("/api/me").set("Cookie", cookie), 200, "who is logged in");
  await expectStatus(client(h).get("/api/me").set("Accept", JSON_ACCEPT), 401, "nobody logged in");
  const login = (body: object) => client(h).post("/api/auth/login").set("Accept", JSON_ACCEPT).send(body);
  await expectStatus(login({ name: "anna", password: PASSWORD }), 204, "a login");
  await expectStatus(login({ name: "anna" }), 400, "a login without a password");
  await expectStatus(client(h).post("/api/auth/login").type("form").send({ name: "anna", password: PASSWORD }), 415, "a login by form");
  await expectStatus(client(h).post("/api/auth/login").set("Content-Type", "application/json").send(`"${BIG}"`), 413, "a body over 64 KiB");
  for (let i = 0; i < 10; i++) await expectStatus(login({ name: "anna", password: "wrong password" }), 401, `failed login ${i + 1}`);
  await expectStatus(login({ name: "anna", password: "wrong password" }), 429, "one failed login too many");
  await expectStatus(client(h).post("/api/auth/logout").set("Cookie", cookie).set("Sec-Fetch-Site", "cross-site").set("Accept", JSON_ACCEPT), 403, "a logout from another site");
  await expectStatus(client(h).post("/api/auth/logout").set("Cookie", cookie), 204, "a logout");
  await expectStatus(client(h).get("/api/auth/logout"), 405, "GET on logout");
}

async function invitePageRun(h: Harness): Promise<void> {
  const { key } = await createKey(h, "page key");
  const invite = async (query: Record<string, string> = {}) =>
    tokenOf((await expectStatus(client(h).get(h.config.invites.apiPath).query({ key, ...query }), 201, "an invite")).headers["location"] as string);
  const token = await invite();
  const page = `/invite/${encodeURIComponent(token)}`;
  await expectStatus(client(h).get(page), 200, "the invite page");
  await expectStatus(client(h).get(`/invite?${token}`), 200, "the invite page, Prosody's link");
  await expectStatus(client(h).get("/invite/nope"), 404, "an unknown invite's page");
  await expectStatus(client(h).get("/invite?nope").set("Accept", JSON_ACCEPT), 404, "an unknown invite, Prosody's link, JSON");
  const form = (body: object | string, path = page) => client(h).post(path).type("form").send(body);
  await expectStatus(form({ username: "pia", password: "short" }), 400, "a short password");
  await expectStatus(form({ username: "a b", password: PASSWORD }), 406, "a name with a space");
  await expectStatus(form({ username: "admin", password: PASSWORD }), 403, "a reserved name");
  await expectStatus(form({ username: "nina", password: PASSWORD }, `/invite/${encodeURIComponent(await invite())}`), 200, "another invite, used");
  await expectStatus(form({ username: "nina", password: PASSWORD }), 409, "a taken name");
  await expectStatus(form({ username: "downstream3", password: PASSWORD }), 503, "an account server that cannot say whether the name is free");
  await expectStatus(form(`username=${BIG}`), 413, "a form over 64 KiB");
  await expectStatus(client(h).post(page).set("Content-Encoding", "gzip").type("form").send("username=x"), 415, "a compressed form");
  await expectStatus(client(h).post(page).set("Origin", "https://evil.example").type("form").send({ username: "pia", password: PASSWORD }), 403, "a form from another site");
  await expectStatus(form({ username: "pia", password: PASSWORD }), 200, "the form, right");
  await expectStatus(client(h).get(page), 410, "a used invite's page");
  await expectStatus(client(h).get(`/invite?${token}`), 410, "a used invite, Prosody's link");
  await expectStatus(form({ username: "pia2", password: PASSWORD }), 410, "the form of a used invite");
  await expectStatus(form({ username: "pia2", password: PASSWORD }, "/invite/nope"), 404, "the form of an unknown invite");
  const takenLater = await invite();
  await expectStatus(form({ username: "taken3", password: PASSWORD }, `/invite/${encodeURIComponent(takenLater)}`), 409, "a name the account server made meanwhile");
}

async function operationsRun(h: Harness): Promise<void> {
  await expectStatus(client(h).get("/healthz"), 200, "health");
  await expectStatus(client(h).get("/metrics"), 200, "metrics");
  await expectStatus(client(h).get("/openapi.json"), 200, "the description");
  await expectStatus(client(h).post("/healthz"), 405, "POST on health");
  await expectStatus(client(h).get("/").set("Accept", "text/html"), 200, "the bare address, from a browser");
  await expectStatus(client(h).get("/").set("Accept", JSON_ACCEPT), 404, "the bare address, from an API client");
}

describe("the OpenAPI description (GET /openapi.json)", () => {
  test("is a valid OpenAPI 3.1 document, and the validator does refuse a broken one", async () => {
    await withHarness({}, async (h) => {
      const { doc } = await servedDoc(h);
      assert.equal(doc["openapi"], "3.1.0");
      assert.equal(await openApiProblems(doc), null);
      const broken = structuredClone(doc);
      (broken.paths["/healthz"]!["get"] as { responses: Record<string, unknown> }).responses["200"] = { content: {} };
      assert.match(String(await openApiProblems(broken)), /description/, "a response without its description is refused");
    });
  });

  test("docs/openapi.json is exactly what the service serves for config.example.json", async () => {
    const example = loadConfig(new URL("../../config.example.json", import.meta.url).pathname, {});
    const { publicUrl, register: { basePath }, invites: { apiPath }, metrics } = example;
    await withHarness({ publicUrl, register: { basePath }, invites: { apiPath }, metrics }, async (h) => {
      const { text } = await servedDoc(h);
      assert.equal(text, exampleOpenApiText(), "the script and the service make the same text");
      assert.equal(readFileSync(OPENAPI_FILE, "utf8"), text, "docs/openapi.json is stale: run `npm run openapi`");
    });
  });

  test("its paths follow register.basePath and invites.apiPath, its server is publicUrl, and /metrics is there only when served here", async () => {
    const config = { publicUrl: "https://example.org/gate", register: { basePath: "/signup/" }, invites: { apiPath: "/mint" }, metrics: { enabled: false } };
    await withHarness(config, async (h) => {
      const { doc } = await servedDoc(h);
      assert.deepEqual(doc["servers"], [{ url: "https://example.org/gate", description: "`publicUrl`" }]);
      const paths = Object.keys(doc.paths);
      for (const path of ["/signup/", "/signup/verify/", "/signup/verify/{token}", "/mint"]) assert.ok(paths.includes(path), `${path} is described`);
      for (const path of ["/register_account/", "/invites_api", "/metrics"]) assert.ok(!paths.includes(path), `${path} is not`);
      assert.deepEqual(routesWithoutOperation(h.app, doc), []);
      await expectStatus(client(h).get("/metrics"), 404, "no /metrics here");
    });
  });

  test("after a config reload that changes publicUrl, the description names the new server and keeps its paths", async () => {
    await withHarness({}, async (h) => {
      const before = await servedDoc(h);
      applyConfig(h.ctx, parseConfig({ ...testConfig(h.dir), publicUrl: "https://signup.example.org" }, h.configPath));
      const after = await servedDoc(h);
      assert.deepEqual(after.doc["servers"], [{ url: "https://signup.example.org", description: "`publicUrl`" }]);
      assert.deepEqual(after.doc.paths, before.doc.paths);
    });
  });

  test("every route the app mounts has an operation, and a route without one is named", async () => {
    await withHarness({}, async (h) => {
      const { doc } = await servedDoc(h);
      const missing = routesWithoutOperation(h.app, doc);
      assert.deepEqual(missing, [], `routes with no operation in src/http/openapi.ts (add one to operations()):\n${missing.join("\n")}`);
      const extra = new Router();
      extra.get("/extra/:thing", (ctx) => void (ctx.body = "x"));
      extra.delete("/healthz", (ctx) => void (ctx.status = 204));
      h.app.use(extra.routes());
      assert.deepEqual(routesWithoutOperation(h.app, doc), ["GET /extra/:thing", "DELETE /healthz"]);
    });
  });

  test("every response of a run through every operation and status is what the description allows, and every documented response is met", async () => {
    const exchanges: Exchange[] = [];
    const record = (e: Exchange) => exchanges.push(e);
    const overrides = (provisionUrl: string) => ({
      register: { throttleSeconds: 60, blacklist: ["203.0.113.0/24"] },
      invites: { perUser: { max: 1 } },
      accounts: { provisionWaitMs: 3000, provision: [{ type: "http" as const, url: `${provisionUrl}/accounts`, checkUrl: `${provisionUrl}/check`, secret: "s".repeat(32), timeoutMs: 2000 }] },
    });
    let doc: Doc | undefined;
    // One harness per surface (the rate limits count per peer, and every request here comes from one),
    // each on a real SQLite file, with its mail going to a real SMTP server on loopback.
    const runs: [(h: Harness) => Promise<void>, Partial<typeof MODERATION>][] = [
      [registrationRun, {}], [verificationRun, {}], [modInvitesRun, {}], [invitationApiRun, {}], [invitePageRun, {}], [operationsRun, {}], [moderationRun, MODERATION],
    ];
    for (const [run, extra] of runs) {
      const server = await startAccountServer();
      try {
        const base = overrides(server.url);
        await withHarness({ ...base, ...extra, register: { ...base.register, ...extra.register } }, async (h) => {
          h.outbox.start();
          doc ??= (await servedDoc(h)).doc;
          await run(h);
        }, { smtp: true, record });
      } finally {
        await server.close();
      }
    }
    assert.ok(doc);
    const checker = new OpenApiChecker(doc);
    const problems = exchanges.flatMap((e) => checker.check(e));
    assert.deepEqual(problems, [], `responses the description does not allow:\n${problems.join("\n")}`);

    const unmet = checker.documentedResponses().filter((r) => !checker.seen.has(r));
    const excused = (r: string) => r === HEALTH_DOWN || (codesOf(doc!, r).length > 0 && codesOf(doc!, r).every((c) => MADE_ELSEWHERE.has(c)));
    const notExcused = unmet.filter((r) => !excused(r));
    assert.deepEqual(notExcused, [], `documented responses no request here met:\n${notExcused.join("\n")}`);
    const operations = checker.operations().map((op) => op.key);
    const met = new Set([...checker.seen].map((s) => s.split(" ").slice(0, 2).join(" ")));
    assert.deepEqual(operations.filter((op) => !met.has(op)), [], "every operation answered at least once");

    // The same responses against a description that drifted from them: each drift is named.
    const drifted = structuredClone(doc);
    const op = (path: string, method: string) => drifted.paths[path]![method] as { responses: Record<string, unknown> };
    delete op("/invites_api", "get").responses["303"];
    const components = drifted["components"] as { schemas: Record<string, { required: string[] }>; headers: Record<string, { schema: { pattern: string } }> };
    components.schemas["Verified"]!.required.push("mail");
    components.headers["RetryAfter"]!.schema.pattern = "^0$";
    const found = exchanges.flatMap((e) => new OpenApiChecker(drifted).check(e)).join("\n");
    assert.match(found, /GET \/invites_api → 303 text\/plain: GET \/invites_api documents no 303/);
    assert.match(found, /→ 200 application\/json: body .*must have required property 'mail'/);
    assert.match(found, /→ 429 application\/json: header Retry-After/);
  });
});
