import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { connect, type AddressInfo } from "node:net";
import type supertest from "supertest";
import {
  createHarness,
  encode,
  postRegistration,
  registration,
  storeSnapshot,
  type Harness,
  type StoreSnapshot,
} from "../helpers/harness.ts";

// DESIGN.md §8: no input makes gatehouse answer 500 or lose data. Every request here gets a 4xx with
// a reason, and the store (one pending registration, one account, one queued mail) stays as it was.

const BASE = "/register_account/";
const VERIFY = `${BASE}verify/`;
const BODY_LIMIT = 64 * 1024;

interface Seeded {
  h: Harness;
  before: StoreSnapshot;
  /** Asserts a 4xx with a non-empty reason, and that nothing stored changed. */
  expectRefusal(res: supertest.Response, status: number | ((status: number) => boolean), label: string): Promise<void>;
}

/** A harness holding one pending registration and one account, so "nothing changed" means something. */
async function withSeeded(body: (s: Seeded) => Promise<void>, overrides: Parameters<typeof createHarness>[0] = {}): Promise<void> {
  const h = await createHarness(overrides);
  try {
    assert.equal((await postRegistration(h, registration({ username: "pending1", mail: "pending1@example.org" }))).status, 200);
    const res = await postRegistration(h, registration({ username: "active1", mail: "active1@example.org" }));
    assert.equal(res.status, 200);
    assert.equal((await h.http.post(`${VERIFY}${res.text}`)).status, 200);
    const before = await storeSnapshot(h);
    assert.equal(before.pending.length, 1);
    assert.equal(before.accounts.length, 1);
    const seeded: Seeded = {
      h,
      before,
      async expectRefusal(res, status, label) {
        const ok = typeof status === "number" ? res.status === status : status(res.status);
        const text = typeof res.text === "string" ? res.text : JSON.stringify(res.body ?? "");
        assert.ok(ok, `${label}: got ${res.status} ${text.slice(0, 200)}`);
        assert.ok(res.status >= 400 && res.status < 500, `${label}: ${res.status} is not a 4xx`);
        const reason = res.body && typeof res.body === "object" && "message" in res.body ? String(res.body.message) : text;
        if (res.request.method !== "HEAD") assert.ok(reason && reason.trim().length > 0, `${label}: a reason is given`);
        assert.deepEqual(await storeSnapshot(h), before, `${label}: nothing stored changed`);
      },
    };
    await body(seeded);
  } finally {
    await h.close();
  }
}

function postBase64Text(h: Harness, text: string): supertest.Test {
  return h.http.post(BASE).set("Content-Type", "application/encoded").set("Accept", "application/json").send(text);
}

function postJsonText(h: Harness, text: string): supertest.Test {
  return h.http.post(BASE).set("Content-Type", "application/json").set("Accept", "application/json").send(text);
}

/** Sends raw bytes: left to itself superagent serialises a Buffer as JSON (or as a form) by its content type. */
function postBytes(h: Harness, path: string, contentType: string | null, bytes: Buffer): supertest.Test {
  const req = h.http.post(path).set("Accept", "application/json");
  if (contentType === null) req.unset("Content-Type");
  else req.set("Content-Type", contentType);
  return req.serialize((data: unknown) => data as string).send(bytes).buffer(true).parse((res, done) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // plain text or HTML: keep the text
      }
      done(null, body);
    });
  });
}

// Row 4 of §3: not base64 of a JSON object with five strings.

test("bodies that are not base64 are refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const text of ["", "   \r\n", "%%%%", "not base64!", "A", "AAAAA", "QUFB=QUFB", "QUFBQQ===", "QUJD\u00e9"]) {
      await expectRefusal(await postBase64Text(h, text), 400, JSON.stringify(text));
    }
  });
});

test("base64 of something that is not JSON is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const text of ["hello", "{", "{'username': 'x'}", "undefined", "NaN", '{"a":1,}', "\u0000"]) {
      await expectRefusal(await postBase64Text(h, encode(text)), 400, `base64 of ${JSON.stringify(text)}`);
      await expectRefusal(await postJsonText(h, text), 400, `raw JSON ${JSON.stringify(text)}`);
    }
  });
});

test("JSON that is not an object is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const text of ["[]", "[{}]", "null", "42", "-0.5e3", '"a string"', "true", "false", JSON.stringify([registration()])]) {
      await expectRefusal(await postBase64Text(h, encode(text)), 400, `base64 of ${text.slice(0, 40)}`);
      await expectRefusal(await postJsonText(h, text), 400, `raw JSON ${text.slice(0, 40)}`);
    }
  });
});

const FIELDS = ["username", "password", "ip", "mail", "auth_token"] as const;

test("a registration missing any one field is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const field of FIELDS) {
      const value: Record<string, unknown> = { ...registration() };
      delete value[field];
      const res = await postBase64Text(h, encode(value));
      await expectRefusal(res, 400, `missing ${field}`);
      assert.match(res.body.message, new RegExp(field));
    }
    await expectRefusal(await postBase64Text(h, encode({})), 400, "empty object");
  });
});

test("a registration with any field of the wrong type is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const field of FIELDS) {
      for (const wrong of [42, 0, null, true, {}, { value: "x" }, [], ["x"]]) {
        const value = { ...registration(), [field]: wrong };
        await expectRefusal(await postBase64Text(h, encode(value)), 400, `${field} = ${JSON.stringify(wrong)}`);
        await expectRefusal(await postJsonText(h, JSON.stringify(value)), 400, `raw ${field} = ${JSON.stringify(wrong)}`);
      }
    }
  });
});

test("the optional lang field, when present, must be a string (DESIGN §10); a wrong type is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const wrong of [42, null, true, {}, ["de"]]) {
      const value = { ...registration(), lang: wrong };
      await expectRefusal(await postBase64Text(h, encode(value)), 400, `lang = ${JSON.stringify(wrong)}`);
      await expectRefusal(await postJsonText(h, JSON.stringify(value)), 400, `raw lang = ${JSON.stringify(wrong)}`);
    }
  });
});

test("an inherited or duplicated field does not count as a string field", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const { username: _u, ...rest } = registration();
    const proto = JSON.stringify({ __proto__: null, ...rest }).replace(/^\{/, '{"__proto__":{"username":"eve"},');
    await expectRefusal(await postJsonText(h, proto), 400, "username only under __proto__");
    const duplicate = JSON.stringify(registration()).replace(/^\{/, '{"username":"eve",').replace(/"username":"user\d+"/, '"username":7');
    await expectRefusal(await postJsonText(h, duplicate), 400, "last duplicate username is a number");
  });
});

test("ip values that are not an IP address are refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const ips = ["999.1.1.1", "1.2.3", "0x7f.1", "127.1", "0177.0.0.1", "01.02.03.04", "localhost", "", " ", "1.2.3.4/24", "1.2.3.4:80", "::g", "1:2:3:4:5:6:7:8:9", "1.2.3.4.5", "١٢٧.0.0.1"];
    for (const ip of ips) {
      const res = await postBase64Text(h, encode(registration({ ip })));
      await expectRefusal(res, 400, `ip ${JSON.stringify(ip)}`);
      assert.equal(res.body.error, "MALFORMED_REQUEST");
    }
  });
});

test("mail values that are not an address are refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const mails = ["", " ", "no-at-sign", "a@", "@b", "@", "a@b@c.org", "a b@example.org", "a@exa mple.org", "a@example.org\r\nBcc: x@example.org", `${"a".repeat(250)}@example.org`, "\ud800@example.org"];
    for (const mail of mails) {
      const res = await postBase64Text(h, encode(registration({ mail })));
      await expectRefusal(res, 400, `mail ${JSON.stringify(mail)}`);
      assert.equal(res.body.error, "MALFORMED_REQUEST");
    }
  });
});

// Bytes that are not UTF-8.

const INVALID_UTF8: [string, Buffer][] = [
  ["a lone continuation byte", Buffer.from([0x80])],
  ["a truncated sequence", Buffer.from([0xc3])],
  ["0xff", Buffer.from([0xff, 0xfe])],
  ["an overlong slash", Buffer.from([0xc0, 0xaf])],
  ["an encoded surrogate", Buffer.from([0xed, 0xa0, 0x80])],
  ["a code point above U+10FFFF", Buffer.from([0xf4, 0x90, 0x80, 0x80])],
];

function jsonWithBytesInUsername(bytes: Buffer): Buffer {
  const [head, tail] = JSON.stringify(registration({ username: "@@@" })).split("@@@") as [string, string];
  return Buffer.concat([Buffer.from(head), Buffer.from("ab"), bytes, Buffer.from("cd"), Buffer.from(tail)]);
}

test("invalid UTF-8 in a raw JSON body is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const [name, bytes] of INVALID_UTF8) {
      const res = await postBytes(h, BASE, "application/json", jsonWithBytesInUsername(bytes));
      await expectRefusal(res, 400, name);
      assert.match(res.body.message, /UTF-8/);
    }
  });
});

test("invalid UTF-8 inside base64 is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const [name, bytes] of INVALID_UTF8) {
      const res = await postBase64Text(h, jsonWithBytesInUsername(bytes).toString("base64"));
      await expectRefusal(res, 400, name);
      assert.match(res.body.message, /UTF-8/);
    }
  });
});

test("invalid UTF-8 in a verify form is refused with 400", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const [name, bytes] of INVALID_UTF8) {
      const body = Buffer.concat([Buffer.from("uuid="), bytes]);
      await expectRefusal(await postBytes(h, VERIFY, "application/x-www-form-urlencoded", body), 400, `form ${name}`);
      await expectRefusal(await postBytes(h, `${VERIFY}sometoken`, "application/json", Buffer.concat([Buffer.from('{"a":"'), bytes, Buffer.from('"}')])), (s) => s === 400 || s === 404, `json ${name}`);
    }
  });
});

// Deep nesting and size.

test("deeply nested JSON within 64 KiB is refused with 400, raw and in base64", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const arrays = "[".repeat(10_000) + "]".repeat(10_000);
    const objects = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
    const inField = JSON.stringify(registration()).replace(/"username":"[^"]*"/, `"username":${"[".repeat(20_000)}${"]".repeat(20_000)}`);
    assert.ok(objects.length < BODY_LIMIT && inField.length < BODY_LIMIT, "objects.length < BODY_LIMIT && inField.length < BODY_LIMIT");
    await expectRefusal(await postJsonText(h, arrays), 400, "raw nested arrays");
    await expectRefusal(await postBase64Text(h, encode(arrays)), 400, "base64 nested arrays");
    await expectRefusal(await postJsonText(h, objects), 400, "raw nested objects");
    await expectRefusal(await postJsonText(h, inField), 400, "nested arrays as the username");
    await expectRefusal(await postJsonText(h, "[".repeat(30_000)), 400, "unclosed nesting");
    const form = await h.http.post(VERIFY).set("Content-Type", "application/json").set("Accept", "application/json").send(objects);
    await expectRefusal(form, (s) => s === 400 || s === 404, "verify form as nested JSON");
  });
});

test("a body of exactly 64 KiB + 1 is refused with 413; one of exactly 64 KiB is read", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    await expectRefusal(await postBase64Text(h, "A".repeat(BODY_LIMIT + 1)), 413, "base64 64 KiB + 1");
    await expectRefusal(await postJsonText(h, " ".repeat(BODY_LIMIT + 1)), 413, "json 64 KiB + 1");
    await expectRefusal(await postBase64Text(h, "A".repeat(BODY_LIMIT)), 400, "64 KiB exactly is read (and is not a registration)");
    const padded = JSON.stringify(registration({ auth_token: "wrong" }));
    await expectRefusal(await postJsonText(h, padded + " ".repeat(BODY_LIMIT - padded.length)), 401, "64 KiB of JSON is read in full");
    const form = "uuid=" + "x".repeat(BODY_LIMIT - 4);
    await expectRefusal(await h.http.post(VERIFY).type("form").send(form), 413, "verify form 64 KiB + 1");
    // POST verify/:token answers by the token in its path and does not read a body at all.
    await expectRefusal(await h.http.post(`${VERIFY}sometoken`).type("form").send(form), 404, "verify/:token with a 64 KiB + 1 body");
  });
});

/** Writes a request as raw bytes to a real socket and reads the status line of the answer. */
async function rawExchange(h: Harness, head: string, body: Buffer | string = ""): Promise<{ status: number; text: string }> {
  const server = createServer(h.app.callback());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error("no answer within 5 s"));
      }, 5000);
      const finish = () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        const match = /^HTTP\/1\.1 (\d{3})/.exec(text);
        if (match) resolve({ status: Number(match[1]), text });
        else reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      };
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        const text = Buffer.concat(chunks).toString("utf8");
        const split = text.indexOf("\r\n\r\n");
        const length = /\r\ncontent-length: (\d+)/i.exec(text);
        if (split >= 0 && length && Buffer.byteLength(text.slice(split + 4)) >= Number(length[1])) {
          socket.destroy();
          finish();
        }
      });
      socket.on("error", () => {}); // the server may close while the body is still being written
      socket.on("close", finish);
      socket.write(head.replace(/\n/g, "\r\n") + "\r\n");
      socket.write(body);
    });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test("a huge Content-Length with a small body is refused with 413 without waiting for the body", async () => {
  await withSeeded(async ({ h, before }) => {
    const res = await rawExchange(
      h,
      `POST ${BASE} HTTP/1.1\nHost: gatehouse.test\nContent-Type: application/encoded\nContent-Length: 1000000000\nConnection: close\n`,
      encode(registration()),
    );
    assert.equal(res.status, 413, res.text);
    assert.deepEqual(await storeSnapshot(h), before);
  });
});

test("a chunked body that grows past 64 KiB is refused with 413", async () => {
  await withSeeded(async ({ h, before }) => {
    const chunk = "A".repeat(16 * 1024);
    const chunks = Array.from({ length: 5 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("") + "0\r\n\r\n";
    const res = await rawExchange(
      h,
      `POST ${BASE} HTTP/1.1\nHost: gatehouse.test\nContent-Type: application/encoded\nTransfer-Encoding: chunked\nConnection: close\n`,
      chunks,
    );
    assert.equal(res.status, 413, res.text);
    assert.deepEqual(await storeSnapshot(h), before);
  });
});

test("a Content-Encoding other than identity is refused with 415", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const { gzipSync } = await import("node:zlib");
    const gz = gzipSync(Buffer.from(encode(registration())));
    for (const encoding of ["gzip", "GZIP", "deflate", "br", "x-unknown", "identity, gzip"]) {
      const res = await h.http
        .post(BASE)
        .set("Content-Type", "application/encoded")
        .set("Content-Encoding", encoding)
        .set("Accept", "application/json")
        .send(gz);
      await expectRefusal(res, 415, `register ${encoding}`);
      const form = await h.http.post(VERIFY).type("form").set("Content-Encoding", encoding).send("uuid=x");
      await expectRefusal(form, 415, `verify ${encoding}`);
    }
  });
});

test("odd Content-Type headers never make it fail", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const type of ["/", ";;;", "application/json; charset", "application/json; charset=latin1", "text/plain; =x", "multipart/form-data", "application/x-www-form-urlencoded"]) {
      const res = await h.http.post(BASE).set("Content-Type", type).set("Accept", "application/json").send("%%%");
      await expectRefusal(res, 400, `register ${type}`);
      const form = await h.http.post(VERIFY).set("Content-Type", type).send("uuid=nope");
      await expectRefusal(form, (s) => s === 400 || s === 404 || s === 415, `verify ${type}`);
    }
  });
});

// Row 8 of §3: odd Unicode in usernames.

const ODD_NAMES: [string, string][] = [
  ["RTL override U+202E", "\u202Eevil"],
  ["RTL override inside", "ab\u202Ecd"],
  ["zero-width joiner", "a\u200Db"],
  ["zero-width space", "a\u200Bb"],
  ["byte order mark", "\uFEFFabc"],
  ["emoji", "😀"],
  ["emoji with letters", "bob😀"],
  ["emoji ZWJ sequence", "a👨‍👩‍👧"],
  ["variation selector", "a\uFE0F"],
  ["tag character", "a\u{E0041}"],
  ["lone high surrogate", "\ud800"],
  ["lone low surrogate", "x\udc00"],
  ["NUL", "a\u0000b"],
  ["bell", "a\u0007b"],
  ["line separator", "a\u2028b"],
  ["non-breaking space", "a\u00A0b"],
  ["mixed right-to-left and left-to-right", "aא"],
  ["1024 bytes", "a".repeat(1024)],
  ["512 two-byte letters", "é".repeat(512)],
];

test("odd Unicode in usernames is refused with 406, whether sent as base64 or raw JSON", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const [label, username] of ODD_NAMES) {
      const fields = registration({ username });
      const json = JSON.stringify(fields);
      if (label.startsWith("lone")) assert.match(json, /\\ud[89a-f][0-9a-f]{2}/, "the lone surrogate travels escaped");
      const viaBase64 = await postBase64Text(h, encode(json));
      await expectRefusal(viaBase64, 406, `${label} (base64)`);
      assert.equal(viaBase64.body.error, "USERNAME_INVALID");
      const viaJson = await postJsonText(h, json);
      await expectRefusal(viaJson, 406, `${label} (raw JSON)`);
    }
  });
});

test("a lone surrogate escaped in JSON is refused with 406, and the refusal log stays valid JSON", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const json = JSON.stringify(registration({ username: "@@" })).replace('"@@"', '"\\ud800"');
    const res = await postJsonText(h, json);
    await expectRefusal(res, 406, "lone surrogate");
    assert.ok(h.logs.lines.some((l) => l["code"] === "USERNAME_INVALID"), "h.logs.lines.some((l) => l[\"code\"] === \"USERNAME_INVALID\")");
  });
});

test("a lone surrogate in any field is refused with a 4xx, never a 500", async () => {
  const expected: Record<string, number> = { username: 406, mail: 400, ip: 400, auth_token: 401 };
  for (const [field, status] of Object.entries(expected)) {
    await withSeeded(async ({ h, expectRefusal }) => {
      const fields = registration();
      const json = JSON.stringify(fields).replace(`"${fields[field as keyof typeof fields]}"`, `"ab\\ud800cd"`);
      assert.match(json, /\\ud800/);
      await expectRefusal(await postJsonText(h, json), status, `raw JSON ${field}`);
      await expectRefusal(await postBase64Text(h, encode(json)), status, `base64 ${field}`);
    });
  }
});

test("a password made of lone surrogates never makes it fail", async () => {
  await withSeeded(async ({ h }) => {
    const json = JSON.stringify(registration({ password: "@@" })).replace('"@@"', `"${"\\udc00".repeat(10)}"`);
    const res = await postJsonText(h, json);
    assert.ok(res.status < 500, `${res.status} ${res.text}`);
  });
});

test("lone surrogates in a verify token never make it fail", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const json = await h.http.post(VERIFY).set("Content-Type", "application/json").send('{"uuid":"\\ud800"}');
    await expectRefusal(json, 404, "verify JSON uuid lone surrogate");
    await expectRefusal(await h.http.get(`${VERIFY}%ED%A0%80`), 404, "GET verify/ encoded surrogate");
    await expectRefusal(await h.http.post(`${VERIFY}%ED%A0%80`), 404, "POST verify/ encoded surrogate");
    await expectRefusal(await h.http.post(VERIFY).type("form").send("uuid=%ED%A0%80"), 404, "verify form encoded surrogate");
  });
});

// Methods and paths.

const WRONG_METHODS = ["put", "delete", "patch", "get", "head", "options", "propfind", "mkcol"] as const;

function request(h: Harness, method: string, path: string): supertest.Test {
  return (h.http as unknown as Record<string, (p: string) => supertest.Test>)[method]!(path);
}

test("every method but POST on {basePath}, with or without its trailing slash, is refused with 405 and Allow: POST", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const path of [BASE, BASE.slice(0, -1)]) {
      for (const method of WRONG_METHODS) {
        const res = await request(h, method, path).set("Content-Type", "application/encoded").send(method === "get" || method === "head" ? undefined : encode(registration()));
        await expectRefusal(res, 405, `${method} ${path}`);
        assert.equal(res.headers["allow"], "POST", method);
      }
    }
  });
});

test("wrong methods on the verify routes are refused with 405 naming GET and POST", async () => {
  await withSeeded(async ({ h }) => {
    const token = await postRegistration(h, registration({ username: "methodical" }));
    const snapshot = await storeSnapshot(h);
    for (const path of [VERIFY, `${VERIFY}${token.text}`, `${VERIFY}unknown`]) {
      for (const method of ["put", "delete", "patch", "propfind", "mkcol"]) {
        const res = await request(h, method, path).type("form").send(`uuid=${token.text}`);
        assert.equal(res.status, 405, `${method} ${path}: ${res.status}`);
        assert.ok(res.text.length > 0, "res.text.length > 0");
        const allow = String(res.headers["allow"]).split(/,\s*/);
        assert.ok(allow.includes("GET") && allow.includes("POST"), `${method} ${path}: Allow ${res.headers["allow"]}`);
        assert.deepEqual(await storeSnapshot(h), snapshot, `${method} ${path} changed the store`);
      }
    }
  });
});

test("unknown paths are answered 404", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const paths = [
      "/",
      "/nope",
      "/register_accoun",
      "/register_account/x",
      "/register_account/verify",
      "/register_account/verify/a/b",
      "/register_account/verify/tok/",
      "/register_account/verify/%",
      "/register_account/verify/%ZZ",
      "/register_account/verify/%00",
      "/%2e%2e/register_account/",
      `/${"x".repeat(4000)}`,
      `/register_account/verify/${"t".repeat(4000)}`,
    ];
    for (const path of paths) {
      for (const method of ["get", "post"] as const) {
        const res = await h.http[method](path).set("Accept", "application/json");
        await expectRefusal(res, 404, `${method} ${path.slice(0, 60)}`);
      }
    }
  });
});

test("an unknown method on an unknown path is answered 404, not 500", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const method of ["propfind", "mkcol"]) {
      await expectRefusal(await request(h, method, "/nope"), (s) => s === 404 || s === 405, `${method} /nope`);
      await expectRefusal(await request(h, method, "/healthz"), 405, `${method} /healthz`);
    }
  });
});

test("a wrong method on /healthz is 405 with a non-empty Allow", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    const res = await h.http.put("/healthz");
    await expectRefusal(res, 405, "PUT /healthz");
    assert.match(String(res.headers["allow"]), /GET/);
  });
});

// Verify forms with the wrong shape.

test("verify forms with the wrong shape get 400 or the 404 failure page, never more", async () => {
  await withSeeded(async ({ h, expectRefusal }) => {
    for (const text of ["[]", "null", "7", '"uuid"', "{", '{"uuid": 5}', '{"uuid": {"$ne": null}}', '{"uuid": ["a", "b"]}', '{"token": null}']) {
      const res = await h.http.post(VERIFY).set("Content-Type", "application/json").send(text);
      await expectRefusal(res, (s) => s === 400 || s === 404, `verify JSON ${text}`);
    }
    for (const form of ["uuid", "uuid=&token=", "uuid=%", "uuid=%ZZ", "uuid[]=a", "=", "&&&", `uuid=${"x".repeat(300)}`, "uuid=%00"]) {
      const res = await h.http.post(VERIFY).type("form").send(form);
      await expectRefusal(res, (s) => s === 400 || s === 404, `verify form ${form.slice(0, 40)}`);
    }
  });
});

// A seeded fuzz loop: random bytes never make it answer 5xx or change what is stored.

/** xorshift32: small, seeded, and the same run every time. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

test("300 random bodies posted to {basePath} and the verify routes never answer 5xx nor change the store", async () => {
  await withSeeded(async ({ h, before }) => {
    const next = xorshift32(0x6a7e_4005);
    const pick = <T>(items: readonly T[]): T => items[next() % items.length]!;
    const paths = [BASE, BASE, VERIFY, `${VERIFY}${"fuzz".repeat(3)}`];
    const types = ["application/encoded", "application/json", "application/x-www-form-urlencoded", "text/plain", null] as const;
    const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=\r\n ";
    const template = JSON.stringify(registration({ auth_token: "not-the-token" }));
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const length = next() % 600;
      const kind = next() % 4;
      let bytes: Buffer;
      if (kind === 0) {
        // Arbitrary bytes.
        bytes = Buffer.from(Array.from({ length }, () => next() & 0xff));
      } else if (kind === 1) {
        // Base64-looking text.
        bytes = Buffer.from(Array.from({ length }, () => pick([...B64])).join(""));
      } else {
        // A registration (with a wrong auth_token) with a few random bytes overwritten, raw or in base64.
        const mutated = Buffer.from(template);
        for (let j = 0, n = 1 + (next() % 3); j < n; j++) {
          mutated[next() % mutated.length] = next() % 2 ? 0x20 + (next() % 95) : next() & 0xff;
        }
        bytes = kind === 2 ? mutated : Buffer.from(mutated.toString("base64"));
      }
      const path = pick(paths);
      // Mutated registrations mostly carry the content type that gets them parsed, so they reach the later checks.
      const matching = kind === 2 ? "application/json" : kind === 3 ? "application/encoded" : null;
      const type = matching && next() % 4 !== 0 ? matching : pick(types);
      const res = await postBytes(h, path, type, bytes);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      assert.ok(res.status >= 400 && res.status < 500, `#${i} ${path} ${type} ${bytes.toString("base64")} → ${res.status} ${String(res.text).slice(0, 200)}`);
    }
    assert.deepEqual(await storeSnapshot(h), before, "random bodies changed the store");
    assert.ok(!h.logs.lines.some((l) => l["msg"] === "unexpected error"), "nothing was logged as an unexpected error");
    assert.ok(statuses.size > 1, `varied answers: ${JSON.stringify([...statuses])}`);
  });
});
