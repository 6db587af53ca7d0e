import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import validator from "validator";
import { parseIp } from "../../src/domain/filters.ts";
import { canonicalMail, parseMail, PLAIN_VALID_MAIL } from "../../src/domain/mail-address.ts";
import { decodeUtf8 } from "../../src/http/body.ts";

// The refusal path's cheaper decoders must answer exactly as the ones they replaced.

const reference = new TextDecoder("utf-8", { fatal: true });

test("decodeUtf8 accepts, drops a leading BOM and refuses exactly as a fatal TextDecoder does", () => {
  const samples = [
    Buffer.from("plain ascii"),
    Buffer.from("\uFEFF{\"a\":1}"),
    Buffer.from("\uFEFF\uFEFFtwo boms"),
    Buffer.from("bücher 日本 🎉"),
    Buffer.from([0xc3, 0x28]),
    Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8
    Buffer.from([0xf0, 0x9f, 0x8e]), // cut short
    Buffer.from([0xff]),
    Buffer.alloc(0),
  ];
  for (const bytes of samples) {
    let expected: string | null;
    try {
      expected = reference.decode(bytes);
    } catch {
      expected = null;
    }
    let actual: string | null;
    try {
      actual = decodeUtf8(bytes);
    } catch (err) {
      assert.equal((err as { code?: string }).code, "MALFORMED_REQUEST");
      actual = null;
    }
    assert.equal(actual, expected, `bytes ${bytes.toString("hex")}`);
  }
  // A view into a larger buffer (as a body slice may be) decodes only its own bytes.
  const whole = Buffer.from("xxhello");
  assert.equal(decodeUtf8(whole.subarray(2)), "hello");
});

test("parseIp's dotted-quad shortcut agrees with ipaddr.js on every IPv4-like spelling", () => {
  const samples = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "0x7f.0.0.1", " 10.0.0.1 ", "1.2.3.4.5", "10.00.0.1", "192.168.1.100", "1..2.3", "::ffff:1.2.3.4", "2001:db8::1", ""];
  for (const text of samples) {
    const trimmed = text.trim();
    const legacy = trimmed.includes(".") && !trimmed.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(trimmed);
    const expected = !ipaddr.isValid(trimmed) || legacy ? null : ipaddr.process(trimmed);
    const actual = parseIp(text);
    assert.equal(actual?.toString() ?? null, expected?.toString() ?? null, JSON.stringify(text));
    assert.equal(actual?.kind() ?? null, expected?.kind() ?? null, JSON.stringify(text));
  }
});

// Characters that decide isEmail's verdict, weighted towards the plain ones of real addresses.
const MAIL_CHARS = [..."abcxyz0189", ..."abcxyz0189", ..."..@-_+!#$%&'*/=?^`{|}~", "\"", " ", "ü", "Ａ", "\u00a0", "\u200d", "A"];

test("the plain-address shortcut accepts only what validator's isEmail accepts, and parseMail answers as isEmail did", () => {
  const edges = [
    "a@b.co", "a.b.c@d.example", "a..b@x.org", ".a@x.org", "a.@x.org", "a@x", "a@-x.org", "a@x-.org", "a@x.o",
    "a_b@x.org", "a@x_y.org", "a@1.2.3.4", "a@x.123", "a@x.xn--p1ai", "\"q\"@x.org", "a@b@c.org",
    `${"l".repeat(64)}@x.org`, `${"l".repeat(65)}@x.org`, `a@${"d".repeat(63)}.org`, `a@${"d".repeat(64)}.org`,
    `a@${Array.from({ length: 60 }, () => "abc").join(".")}.org`, "a@x.or-g", "{}|~@x.museum",
  ];
  const check = (text: string) => {
    const mail = canonicalMail(text);
    if (mail === null) return;
    if (PLAIN_VALID_MAIL.test(mail)) assert.ok(validator.isEmail(mail), `shortcut accepted ${JSON.stringify(mail)}, isEmail does not`);
    const expected = text.length > 254 || /\p{Cs}/u.test(text) || !validator.isEmail(mail) ? null : mail;
    assert.equal(parseMail(text), expected, JSON.stringify(text));
  };
  for (const text of edges) check(text);
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...MAIL_CHARS), { minLength: 1, maxLength: 90 }), (chars) => check(chars.join(""))),
    { numRuns: 20_000 },
  );
  // The shortcut is what the refusal path takes for an ordinary address.
  assert.ok(PLAIN_VALID_MAIL.test("someone.else+tag@mail.example.org"));
});
