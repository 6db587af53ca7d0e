import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { solveChallenge, type Challenge } from "altcha-lib";
import { deriveKey } from "altcha-lib/algorithms/sha";
import { createLogger } from "../../src/log.ts";
import { createRedisBacking } from "../../src/limiter-backing.ts";
import { createHarness, metricSample, postRegistration, registration, storeSnapshot, withHarness, type Harness } from "../helpers/harness.ts";
import { client, issueInvite, PASSWORD } from "../helpers/invites.ts";

// DESIGN §11 "Proof of work" over HTTP: the challenge is solved here by altcha-lib's own solver
// (the browser test has the real widget solve it). The harness clock is the wall clock: altcha-lib
// checks a challenge's expiry against it too.

const VERIFY = "/register_account/verify/";
const RESEND = "/register_account/verify/resend";
const ALWAYS = { antibot: { proofOfWork: "always" as const, complexity: 1000 } };

async function challengeOf(h: Harness): Promise<Challenge> {
  const res = await client(h).get("/_gatehouse/pow/challenge");
  assert.equal(res.status, 200);
  assert.equal(res.headers["cache-control"], "no-store");
  return res.body as Challenge;
}

/** What the widget puts in its hidden field: base64 of the challenge and the solution. */
function payloadOf(challenge: Challenge, solution: unknown): string {
  return Buffer.from(JSON.stringify({ challenge: { parameters: challenge.parameters, signature: challenge.signature }, solution })).toString("base64");
}

async function solved(h: Harness): Promise<string> {
  const challenge = await challengeOf(h);
  const solution = await solveChallenge({ challenge, deriveKey });
  assert.ok(solution, "the challenge can be solved");
  return payloadOf(challenge, solution);
}

function acceptInvite(h: Harness, id: string, username: string, altcha?: string) {
  return client(h).post(`/invite/${id}`).type("form").send({ username, password: PASSWORD, ...(altcha === undefined ? {} : { altcha }) });
}

async function powMetric(h: Harness, form: string, outcome: string): Promise<number | null> {
  return metricSample((await client(h).get("/metrics")).text, `gatehouse_proof_of_work_total{form="${form}",outcome="${outcome}"}`);
}

async function wallClockHarness(overrides: Parameters<typeof createHarness>[0], body: (h: Harness) => Promise<void>): Promise<void> {
  await withHarness(overrides, async (h) => {
    h.clock.t = Date.now();
    await body(h);
  });
}

describe("proof of work (ALTCHA) on the public forms", () => {
  test("with proofOfWork off the forms carry no widget and ask for nothing", async () => {
    await wallClockHarness({}, async (h) => {
      const { id } = await issueInvite(h);
      const page = await client(h).get(`/invite/${id}`);
      assert.doesNotMatch(page.text, /altcha-widget|<script/);
      assert.match(page.headers["content-security-policy"] as string, /^default-src 'none'; style-src 'unsafe-inline';/);
      assert.equal((await acceptInvite(h, id, "plain")).status, 200);
    });
  });

  test("with proofOfWork always the invite page carries the widget from gatehouse itself, a noscript notice, and a CSP allowing only that", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const { id } = await issueInvite(h);
      const page = await client(h).get(`/invite/${id}`);
      assert.equal(page.status, 200);
      assert.match(page.text, /<altcha-widget id="pow" challenge="\/_gatehouse\/pow\/challenge" name="altcha"/);
      assert.match(page.text, /<noscript><p class="error" id="pow-noscript">This form needs JavaScript/);
      const csp = page.headers["content-security-policy"] as string;
      assert.match(csp, /script-src 'self';/);
      assert.match(csp, /worker-src 'self';/);
      assert.match(csp, /connect-src 'self';/);
      assert.doesNotMatch(csp, /unsafe-eval|wasm-unsafe-eval|blob:|https?:/, "no eval, WebAssembly, blob: or other origin");

      const scripts = [...page.text.matchAll(/<(?:script type="module" src|link rel="stylesheet" href)="([^"]+)"/g)].map((m) => m[1]!);
      assert.equal(scripts.length, 3, scripts.join(" "));
      for (const src of scripts) {
        assert.match(src, /^\/_gatehouse\/static\/[0-9a-f]{12}\//, "served from gatehouse, under a versioned path");
        const asset = await client(h).get(src);
        assert.equal(asset.status, 200, src);
        assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");
        assert.match(asset.headers["content-type"] as string, /^text\/(javascript|css)/);
      }
      const worker = scripts.find((s) => s.endsWith("/pow.js"))!.replace("pow.js", "sha-worker.js");
      assert.equal((await client(h).get(worker)).status, 200, "the worker the setup script registers is there too");
      assert.equal((await client(h).get(worker.replace(/static\/[0-9a-f]{12}/, "static/000000000000"))).status, 404, "another version is not served");
    });
  });

  test("on a German page the widget gets its German words, served by gatehouse too", async () => {
    await wallClockHarness({ ...ALWAYS, languages: ["en", "de", "fr"] }, async (h) => {
      for (const [lang, file, label] of [["de", "i18n-de.js", "Ich bin kein Roboter"], ["fr", "i18n-fr-fr.js", "Je ne suis pas un robot"]] as const) {
        const page = await client(h).get(`${VERIFY}?lang=${lang}`);
        assert.match(page.text, new RegExp(`<altcha-widget[^>]* language="${lang}"`));
        const src = new RegExp(`<script type="module" src="(/_gatehouse/static/[0-9a-f]{12}/${file})">`).exec(page.text)?.[1];
        assert.ok(src, `${lang}: the widget's words are loaded`);
        const words = await client(h).get(src);
        assert.equal(words.status, 200);
        assert.match(words.text, new RegExp(label));
      }
      assert.doesNotMatch((await client(h).get(VERIFY)).text, /i18n-/, "English is built into the widget");
    });
  });

  test("an invite form sent without a proof of work comes back with the reason at the widget (400) and creates nothing", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const { id } = await issueInvite(h);
      const before = await storeSnapshot(h);
      const res = await acceptInvite(h, id, "nojs");
      assert.equal(res.status, 400);
      assert.match(res.text, /<altcha-widget[^>]* aria-invalid="true" aria-describedby="pow-error">/);
      assert.match(res.text, /id="pow-error">This form needs a proof of work that your browser computes with JavaScript/);
      assert.match(res.text, /value="nojs"/, "what was typed is kept");
      assert.deepEqual(await storeSnapshot(h), before);
      assert.equal(await powMetric(h, "invite", "missing"), 1);
    });
  });

  test("a solved proof of work lets the invite form through once; the same solution again is refused as used (403)", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const payload = await solved(h);
      const first = await issueInvite(h);
      const ok = await acceptInvite(h, first.id, "solver", payload);
      assert.equal(ok.status, 200, ok.text);
      assert.match(ok.text, /Welcome, solver!/);

      const second = await issueInvite(h, "Bob's key");
      const before = await storeSnapshot(h);
      const replay = await acceptInvite(h, second.id, "replayer", payload);
      assert.equal(replay.status, 403);
      assert.match(replay.text, /id="pow-error">This check was used already/);
      assert.deepEqual(await storeSnapshot(h), before, "nothing created");
      assert.equal(await powMetric(h, "invite", "solved"), 1);
      assert.equal(await powMetric(h, "invite", "replayed"), 1);
      assert.equal((await acceptInvite(h, second.id, "replayer", await solved(h))).status, 200, "a fresh solution works");
    });
  });

  test("forged solutions are refused (403): a wrong key, a changed parameter, a made-up signature, a challenge not ours, garbage", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const { id } = await issueInvite(h);
      const challenge = await challengeOf(h);
      const solution = (await solveChallenge({ challenge, deriveKey }))!;
      const foreign = { parameters: { ...challenge.parameters, nonce: randomBytes(16).toString("hex") }, signature: randomBytes(32).toString("hex") };
      const forged: [string, string][] = [
        ["wrong key", payloadOf(challenge, { ...solution, derivedKey: "00".repeat(32) })],
        ["changed parameter", payloadOf({ ...challenge, parameters: { ...challenge.parameters, keyPrefix: "00" } }, solution)],
        ["made-up signature", payloadOf({ ...challenge, signature: "ab".repeat(32) }, solution)],
        ["not our challenge", payloadOf(foreign, solution)],
        ["garbage", "bm90IGpzb24="],
        ["not base64", "<script>"],
      ];
      for (const [what, payload] of forged) {
        const res = await acceptInvite(h, id, "forger", payload);
        assert.equal(res.status, 403, `${what}: ${res.status}`);
        assert.match(res.text, /id="pow-error">The check that this is not an automated request failed/, what);
      }
      assert.deepEqual((await h.ctx.store.listAccounts()).length, 0);
      assert.equal(await powMetric(h, "invite", "forged"), 4);
      assert.equal(await powMetric(h, "invite", "malformed"), 2);
      assert.equal((await acceptInvite(h, id, "honest", payloadOf(challenge, solution))).status, 200, "the untouched solution still works");
    });
  });

  test("a solution sent after its challenge expired is refused (403)", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const { id } = await issueInvite(h);
      const payload = await solved(h);
      h.clock.advance(601_000);
      const res = await acceptInvite(h, id, "late", payload);
      assert.equal(res.status, 403);
      assert.match(res.text, /id="pow-error">The check has expired/);
      assert.equal(await powMetric(h, "invite", "expired"), 1);
    });
  });

  test("the verify form and the resend form ask for it too; the register API, server to server, never does", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const registered = await postRegistration(h, registration({ username: "api" }));
      assert.equal(registered.status, 200, "the register API is never asked for a proof of work");
      assert.doesNotMatch(registered.text, /altcha/);

      const form = await client(h).get(VERIFY);
      assert.match(form.text, /<altcha-widget/);
      const bare = await client(h).post(VERIFY).type("form").send({ uuid: registered.text });
      assert.equal(bare.status, 400);
      assert.match(bare.text, /id="pow-error"/);
      assert.equal((await h.ctx.store.listAccounts()).length, 0, "the code was not used");
      const verified = await client(h).post(VERIFY).type("form").send({ uuid: registered.text, altcha: await solved(h) });
      assert.equal(verified.status, 200);
      assert.match(verified.text, /Welcome, api!/);

      const resend = await client(h).post(RESEND).type("form").send({ username: "x", mail: "x.pow@example.org" });
      assert.equal(resend.status, 400);
      assert.match(resend.text, /id="pow-error"/);
      const json = await client(h).post(RESEND).set("Accept", "application/json").send({ username: "x", mail: "x.pow@example.org" });
      assert.equal(json.status, 400);
      assert.equal(json.body.error, "POW_REQUIRED");
      const sent = await client(h).post(RESEND).type("form").send({ username: "x", mail: "x.pow@example.org", altcha: await solved(h) });
      assert.equal(sent.status, 200);
      assert.match(sent.text, /id="resent"/);
    });
  });

  test("bad input on the guarded forms and the widget's routes gets a 4xx with a reason, never a 500, and changes nothing", async () => {
    await wallClockHarness(ALWAYS, async (h) => {
      const before = await storeSnapshot(h);
      const cases: [string, () => Promise<{ status: number }>][] = [
        ["huge altcha field", () => client(h).post(RESEND).type("form").send({ username: "x", mail: "x@example.org", altcha: "A".repeat(60_000) })],
        ["altcha of odd Unicode", () => client(h).post(VERIFY).type("form").send({ uuid: "x", altcha: "\u202e\ud83d\ude00" })],
        ["altcha JSON with wrong types", () => client(h).post(VERIFY).type("form").send({ uuid: "x", altcha: Buffer.from(JSON.stringify({ challenge: { parameters: [], signature: 1 }, solution: { counter: "1", derivedKey: {} } })).toString("base64") })],
        ["a counter out of range", async () => {
          const challenge = await challengeOf(h);
          return client(h).post(VERIFY).type("form").send({ uuid: "x", altcha: payloadOf(challenge, { counter: -1e300, derivedKey: "zz" }) });
        }],
        ["a body over 64 KiB", () => client(h).post(RESEND).type("form").send({ username: "x".repeat(70_000), mail: "x@example.org" })],
        ["a JSON array", () => client(h).post(RESEND).set("content-type", "application/json").send("[1,2]")],
        ["invalid UTF-8", () => client(h).post(RESEND).set("content-type", "application/x-www-form-urlencoded").send(Buffer.from([0x75, 0x3d, 0xff, 0xfe]))],
        ["a name far too long", () => client(h).post(RESEND).type("form").send({ username: "n".repeat(5000), mail: "x@example.org" })],
        ["a wrong method on the resend form", () => client(h).put(RESEND)],
        ["a wrong method on the challenge", () => client(h).post("/_gatehouse/pow/challenge")],
        ["an unknown asset", () => client(h).get("/_gatehouse/static/abc/..%2F..%2Fpackage.json")],
      ];
      for (const [what, send] of cases) {
        const res = await send();
        assert.ok(res.status >= 400 && res.status < 500, `${what}: ${res.status}`);
      }
      assert.deepEqual(await storeSnapshot(h), before);
    });
  });

  test("auto: an address past the per-address limit is asked from then on (IPv6 by its /64), others are not", async () => {
    await wallClockHarness({ trustProxy: true, antibot: { proofOfWork: "auto", complexity: 1000, auto: { perAddress: 3, perForm: 1000 } } }, async (h) => {
      const from = (ip: string) => ({ "x-forwarded-for": ip });
      const asked = async (ip: string) => (await client(h).get(VERIFY).set(from(ip))).text.includes("<altcha-widget");
      const a = "2001:db8:1:2::1";
      for (let i = 0; i < 3; i++) {
        const res = await client(h).post(VERIFY).set(from(a)).type("form").send({ uuid: "wrong" });
        assert.equal(res.status, 404, "within the limit a wrong code is just a wrong code");
      }
      assert.equal(await asked(a), false);
      const tripped = await client(h).post(VERIFY).set(from(a)).type("form").send({ uuid: "wrong" });
      assert.equal(tripped.status, 400, "the submission that trips the limit is asked already");
      assert.match(tripped.text, /id="pow-error"/);
      assert.equal(await asked(a), true);
      assert.equal(await asked("2001:db8:1:2:ffff::9"), true, "the same /64");
      assert.equal(await asked("2001:db8:1:3::1"), false, "another /64");
      assert.equal(await asked("192.0.2.44"), false);
      const res = await client(h).post(VERIFY).set(from(a)).type("form").send({ uuid: "wrong", altcha: await solved(h) });
      assert.equal(res.status, 404, "with a proof of work the form is answered again");
      assert.equal(h.logs.lines.filter((l) => l["event"] === "pow-auto-on").length, 1);
    });
  });

  test("auto: past the limit of the whole form everyone is asked", async () => {
    await wallClockHarness({ trustProxy: true, antibot: { proofOfWork: "auto", complexity: 1000, auto: { perAddress: 100, perForm: 4 } } }, async (h) => {
      for (let i = 1; i <= 4; i++) await client(h).post(VERIFY).set("x-forwarded-for", `198.51.100.${i}`).type("form").send({ uuid: "wrong" });
      assert.doesNotMatch((await client(h).get(VERIFY).set("x-forwarded-for", "203.0.113.9")).text, /<altcha-widget/);
      const fifth = await client(h).post(VERIFY).set("x-forwarded-for", "198.51.100.5").type("form").send({ uuid: "wrong" });
      assert.equal(fifth.status, 400);
      assert.match((await client(h).get(VERIFY).set("x-forwarded-for", "203.0.113.9")).text, /<altcha-widget/, "an address never seen before is asked too");
    });
  });

  test("auto: an address that tripped the resend per-address limit is asked from then on", async () => {
    await wallClockHarness({ antibot: { proofOfWork: "auto", complexity: 1000 } }, async (h) => {
      let status = 200;
      for (let i = 0; i < 10 && status === 200; i++) {
        status = (await client(h).post(RESEND).type("form").send({ username: "y", mail: "bombed.pow@example.org" })).status;
      }
      assert.equal(status, 429);
      assert.match((await client(h).get(VERIFY)).text, /<altcha-widget/);
    });
  });
});

const REDIS = process.env["GATEHOUSE_TEST_REDIS"];
if (!REDIS) {
  test("a used solution is refused by another instance sharing Redis", { skip: "GATEHOUSE_TEST_REDIS not set" }, () => {});
} else {
  test("a used solution is refused by another instance sharing Redis", async () => {
    const secret = randomBytes(32).toString("hex");
    const redis = await Promise.all([createRedisBacking(REDIS, createLogger("silent")), createRedisBacking(REDIS, createLogger("silent"))]);
    const [a, b] = await Promise.all(redis.map((r) => createHarness({ ...ALWAYS, secret }, { limiterBacking: r.backing })));
    try {
      a!.clock.t = b!.clock.t = Date.now();
      const payload = await solved(a!);
      const onA = await issueInvite(a!);
      const onB = await issueInvite(b!);
      assert.equal((await acceptInvite(a!, onA.id, "first", payload)).status, 200);
      const replay = await acceptInvite(b!, onB.id, "second", payload);
      assert.equal(replay.status, 403);
      assert.match(replay.text, /This check was used already/);
    } finally {
      await Promise.all([a!.close(), b!.close()]);
      await Promise.all(redis.map((r) => r.close()));
    }
  });
}
