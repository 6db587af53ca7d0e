import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { prepareUsername } from "../../src/domain/username.ts";

function accepted(input: string): string {
  const result = prepareUsername(input);
  if (!result.ok) assert.fail(`${JSON.stringify(input)} was refused: ${result.reason}`);
  return result.username;
}

function refusal(input: string): string {
  const result = prepareUsername(input);
  if (result.ok) assert.fail(`${JSON.stringify(input)} was accepted as ${JSON.stringify(result.username)}`);
  return result.reason;
}

describe("the RFC 8265 §3.5 UsernameCaseMapped examples", () => {
  test("1: juliet@example.com is refused", () => {
    // Differs: PRECIS allows "@", but RFC 7622 §3.3.1 forbids it in XMPP localparts.
    assert.equal(refusal("juliet@example.com"), "username contains a forbidden character '@'");
  });

  test("2: fussball is accepted unchanged", () => {
    assert.equal(accepted("fussball"), "fussball");
  });

  test("3: fußball is accepted and stays distinct from fussball", () => {
    // Same as RFC 8265 (stringprep's nodeprep would have case-folded ß to "ss"; the contract
    // lower-cases instead).
    assert.equal(accepted("fußball"), "fußball");
  });

  test("4: π is accepted", () => {
    assert.equal(accepted("π"), "π");
  });

  test("5: Σ is lower-cased to σ", () => {
    assert.equal(accepted("Σ"), "σ");
  });

  test("6: σ is accepted and equals the prepared Σ", () => {
    assert.equal(accepted("σ"), accepted("Σ"));
  });

  test("7: ς is accepted and stays distinct from σ", () => {
    // Same as RFC 8265 (nodeprep's case folding would have mapped ς to σ).
    assert.equal(accepted("ς"), "ς");
  });

  test("8: foo bar is refused for its space", () => {
    assert.equal(refusal("foo bar"), "username contains a space");
  });

  test("9: the empty string is refused", () => {
    assert.equal(refusal(""), "username is empty");
  });

  test("10: henry with U+2163 ROMAN NUMERAL FOUR is accepted as henryiv", () => {
    // Differs: RFC 8265 only width-maps, so U+2163 keeps its compatibility decomposition and is
    // disallowed; the contract applies NFKC as nodeprep does, which maps it to "IV".
    assert.equal(accepted("henry\u2163"), "henryiv");
  });

  test("11: ♚ is refused as a symbol", () => {
    assert.equal(refusal("♚"), "username contains a disallowed character U+265A");
  });
});

describe("mapping", () => {
  test("full-width letters are NFKC-normalised to ASCII", () => {
    assert.equal(accepted("ＡＢＣ"), "abc");
  });

  test("upper case is mapped to lower case", () => {
    assert.equal(accepted("CAROL"), "carol");
  });

  test("a full-width @ is refused like the ASCII one it normalises to", () => {
    assert.equal(refusal("juliet＠example"), "username contains a forbidden character '@'");
  });

  test("a capital with only a lower-case precomposed form is composed after lower-casing", () => {
    // W + U+030A RING ABOVE has no precomposed capital, but w + ring is U+1E98 (ẘ).
    assert.equal(accepted("W\u030A"), "\u1E98");
  });

  test("preparing a prepared name gives the same name", () => {
    const inputs = ["CAROL", "ＡＢＣ", "henry\u2163", "Σ", "ΟΔΟΣ", "İstanbul", "W\u030A", "fußball", "שלום", "l·l"];
    for (const input of inputs) {
      const once = accepted(input);
      assert.equal(accepted(once), once, `for ${JSON.stringify(input)}`);
    }
  });

  test("preparation is idempotent and never throws on random strings", () => {
    // Lone surrogates, joiners, conjoining jamo, combining marks and both directions, shuffled.
    const pool = [..."aZ9-_.+@ ßΣςİ\u0301\u030A\u0307\u2163Ａｱ\u1100\u1161\u11A8שלАمح٣۳\u200D"];
    pool.push("\uD800", "\uDC00", "\0", "♚", "·", "\u{20000}", "\u{1D400}");
    let seed = 42;
    const next = () => (seed = (seed * 48271) % 2147483647);
    for (let n = 0; n < 5000; n++) {
      let input = "";
      for (let len = next() % 8; len > 0; len--) input += pool[next() % pool.length];
      const result = prepareUsername(input);
      if (result.ok) assert.deepEqual(prepareUsername(result.username), result, JSON.stringify(input));
    }
  });
});

describe("forbidden characters", () => {
  for (const ch of `"&'/:<>@`) {
    test(`${ch} is refused`, () => {
      assert.equal(refusal(`a${ch}b`), `username contains a forbidden character '${ch}'`);
    });
  }

  test("other ASCII punctuation is allowed", () => {
    assert.equal(accepted("a-b_c.d+e!f$g~h"), "a-b_c.d+e!f$g~h");
  });

  test("tab, newline and NUL are refused as control characters", () => {
    assert.equal(refusal("a\tb"), "username contains a control character U+0009");
    assert.equal(refusal("a\nb"), "username contains a control character U+000A");
    assert.equal(refusal("a\0b"), "username contains a control character U+0000");
  });

  test("non-ASCII spaces are refused as spaces", () => {
    assert.equal(refusal("a\u00A0b"), "username contains a space");
    assert.equal(refusal("a\u3000b"), "username contains a space");
    assert.equal(refusal("a\u2028b"), "username contains a disallowed character U+2028");
  });

  test("non-ASCII symbols and punctuation are refused", () => {
    assert.equal(refusal("price€"), "username contains a disallowed character U+20AC");
    assert.equal(refusal("a→b"), "username contains a disallowed character U+2192");
    assert.equal(refusal("¡hola"), "username contains a disallowed character U+00A1");
  });

  test("unassigned, private-use and default-ignorable code points are refused", () => {
    assert.equal(refusal("a\u0378"), "username contains a disallowed character U+0378");
    assert.equal(refusal("a\uE000"), "username contains a disallowed character U+E000");
    assert.equal(refusal("a\u200Db"), "username contains a disallowed character U+200D");
    assert.equal(refusal("a\u200Cb"), "username contains a disallowed character U+200C");
    assert.equal(refusal("a\uFE0F"), "username contains a disallowed character U+FE0F");
    assert.equal(refusal("a\u00ADb"), "username contains a disallowed character U+00AD");
  });

  test("a lone surrogate is refused without throwing", () => {
    assert.equal(refusal("\uD800"), "username contains a disallowed character U+D800");
    assert.equal(refusal("a\uDC00b"), "username contains a disallowed character U+DC00");
  });

  test("a middle dot is allowed only between two l's, as in Catalan", () => {
    assert.equal(accepted("col·lecció"), "col·lecció");
    assert.equal(refusal("a·b"), "username contains U+00B7 where RFC 5892 does not allow it");
  });

  test("Arabic-Indic and extended Arabic-Indic digits may not be mixed", () => {
    assert.equal(refusal("علي٣۳"), "username mixes Arabic-Indic and extended Arabic-Indic digits");
  });
});

describe("length", () => {
  test("a 1023-byte name is accepted and a 1024-byte name refused", () => {
    const tooLong = "username is longer than 1023 bytes";
    assert.equal(accepted("a".repeat(1023)).length, 1023);
    assert.equal(refusal("a".repeat(1024)), tooLong);
    assert.equal(accepted("é".repeat(511) + "a"), "é".repeat(511) + "a");
    assert.equal(refusal("é".repeat(512)), tooLong);
    assert.equal(accepted("中".repeat(341)), "中".repeat(341));
    assert.equal(refusal("中".repeat(341) + "a"), tooLong);
    assert.equal(accepted("\u{20000}".repeat(255) + "中"), "\u{20000}".repeat(255) + "中");
    assert.equal(refusal("\u{20000}".repeat(256)), tooLong);
  });

  test("length is measured after preparation", () => {
    // Each full-width letter is 3 bytes in the input but 1 byte once normalised.
    assert.equal(accepted("Ａ".repeat(1023)), "a".repeat(1023));
    // U+FDFA normalises to 18 Arabic letters and spaces, far past the limit.
    assert.equal(refusal("\uFDFA".repeat(100)), "username is longer than 1023 bytes");
  });

  test("a huge input is refused as too long", () => {
    assert.equal(refusal("a".repeat(1_000_000)), "username is longer than 1023 bytes");
  });
});

describe("bidirectional text", () => {
  test("right-to-left Hebrew and Arabic names are accepted", () => {
    assert.equal(accepted("שלום"), "שלום");
    assert.equal(accepted("محمد"), "محمد");
    assert.equal(accepted("דוד2024"), "דוד2024");
    assert.equal(accepted("علي٣"), "علي٣");
  });

  test("names mixing directions against the Bidi Rule are refused", () => {
    const reason =
      "username mixes right-to-left and left-to-right text in a way the Bidi Rule (RFC 5893) forbids";
    assert.equal(refusal("abcשלום"), reason);
    assert.equal(refusal("שלוםabc"), reason);
    assert.equal(refusal("1שלום"), reason);
    assert.equal(refusal("שלום-"), reason);
    assert.equal(refusal("محمد٣3"), reason);
  });

  test("left-to-right names may start with a digit or punctuation", () => {
    assert.equal(accepted("1abc"), "1abc");
    assert.equal(accepted("-abc"), "-abc");
  });
});
