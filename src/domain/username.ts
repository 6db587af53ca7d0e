import { Buffer } from "node:buffer";
import unhomoglyph from "unhomoglyph";

// XMPP localparts, the way gatehouse's contract (DESIGN.md §3 row 8) reads nodeprep: NFKC and
// lower case as nodeprep did, RFC 7622's forbidden characters, and RFC 8264's IdentifierClass
// and RFC 5893's Bidi Rule for the rest, because stringprep's own tables stopped at Unicode 3.2.

export type UsernameCheck = { ok: true; username: string } | { ok: false; reason: string };

const MAX_BYTES = 1023;

// Each normalisation merges at most four code points into one, so an input this long can never
// prepare down to 1023 bytes; refusing it first keeps NFKC off arbitrarily large strings.
const MAX_INPUT_LENGTH = 64 * 1024;

// RFC 7622 §3.3.1 keeps these out of localparts because they delimit or escape JIDs.
const FORBIDDEN = new Set(`"&'/:<>@`);

// RFC 8264 §9: ASCII7, letters, marks and digits are PVALID, plus RFC 5892's PVALID exceptions.
const IDENTIFIER = /[\x21-\x7E\p{Ll}\p{Lu}\p{Lo}\p{Lm}\p{Mn}\p{Mc}\p{Nd}\u06FD\u06FE\u0F0B\u3007]/u;
// ...minus default-ignorables (variation selectors, fillers), the old Hangul jamo that NFC left
// unjoined, and RFC 5892's DISALLOWED exceptions (tatweel, vertical kana repeat marks, …).
const EXCLUDED =
  /[\p{Default_Ignorable_Code_Point}\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\u0640\u07FA\u302E\u302F\u3031-\u3035\u303B]/u;

// RFC 5892 Appendix A (CONTEXTO): punctuation that is valid only beside the script it serves.
const CONTEXTUAL = new Map<string, (chars: string[], i: number) => boolean>([
  ["\u00B7", (c, i) => c[i - 1] === "l" && c[i + 1] === "l"],
  ["\u0375", (c, i) => /\p{Script=Greek}/u.test(c[i + 1] ?? "")],
  ["\u05F3", (c, i) => /\p{Script=Hebrew}/u.test(c[i - 1] ?? "")],
  ["\u05F4", (c, i) => /\p{Script=Hebrew}/u.test(c[i - 1] ?? "")],
  ["\u30FB", (c) => c.some((ch) => /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u.test(ch))],
]);

const TOO_LONG = `username is longer than ${MAX_BYTES} bytes`;

/** Prepares a requested username the way XMPP's nodeprep / PRECIS UsernameCaseMapped (RFC 8265, with RFC 7622's localpart exclusions) does. */
export function prepareUsername(input: string): UsernameCheck {
  if (typeof input !== "string") return refuse("username must be a string");
  if (input.length > MAX_INPUT_LENGTH) return refuse(TOO_LONG);
  // Lower-casing can create a pair that composes (W + ring above has only a lower-case
  // precomposed form, ẘ), so normalise again to keep preparation idempotent.
  const username = input.normalize("NFKC").toLowerCase().normalize("NFKC");
  if (username === "") return refuse("username is empty");
  if (Buffer.byteLength(username, "utf8") > MAX_BYTES) return refuse(TOO_LONG);
  const chars = Array.from(username);
  const fault = findForbiddenChar(chars) ?? findBidiFault(chars);
  return fault === undefined ? { ok: true, username } : refuse(fault);
}

/**
 * The UTS #39 confusable skeleton of a prepared username: NFD, each character mapped by Unicode's
 * confusables.txt (the data unhomoglyph ships), NFD again. Two names with one skeleton look alike
 * (`аdmin` with a Cyrillic а, `admın` with a dotless ı, and `admin` all give "adrnin"). On top, the
 * check UTS #39 §5.4 suggests for a mark that hides in its base: a dot above on a soft-dotted letter
 * (`İ` prepares to i + U+0307) is dropped. Not for display; only for comparing.
 */
export function usernameSkeleton(prepared: string): string {
  return unhomoglyph(prepared.normalize("NFD")).normalize("NFD").replace(/(\p{Soft_Dotted})\u0307+/gu, "$1");
}

function findForbiddenChar(chars: string[]): string | undefined {
  for (const [i, ch] of chars.entries()) {
    if (/\p{Zs}/u.test(ch)) return "username contains a space";
    if (FORBIDDEN.has(ch)) return `username contains a forbidden character '${ch}'`;
    if (/\p{Cc}/u.test(ch)) return `username contains a control character ${codePoint(ch)}`;
    const inContext = CONTEXTUAL.get(ch);
    if (inContext) {
      if (!inContext(chars, i)) return `username contains ${codePoint(ch)} where RFC 5892 does not allow it`;
    } else if (!IDENTIFIER.test(ch) || EXCLUDED.test(ch)) {
      return `username contains a disallowed character ${codePoint(ch)}`;
    }
  }
  const joined = chars.join("");
  if (/[\u0660-\u0669]/.test(joined) && /[\u06F0-\u06F9]/.test(joined)) {
    return "username mixes Arabic-Indic and extended Arabic-Indic digits";
  }
  return undefined;
}

type BidiClass = "L" | "R" | "AN" | "EN" | "ES" | "CS" | "ET" | "ON" | "NSM";

// JavaScript cannot query Bidi_Class, but only identifier code points reach this point, and for
// those the right-to-left blocks, marks, a few digit ranges and a short list of exceptions
// decide it (checked against Unicode 14's data). The Bidi Rule treats R and AL alike.
function bidiClassOf(ch: string): BidiClass {
  if (/[\u02B9\u02BA\u02C6-\u02CF\u02EC\u2E2F\uA67F\uA717-\uA71F\uA788]/.test(ch)) return "ON";
  if (/[\u0CBF\u0CC6\u{11A07}\u{11A08}\u{11C3F}]/u.test(ch)) return "L";
  if (/[\p{Mn}\p{Me}]/u.test(ch)) return "NSM";
  if (/[0-9\u06F0-\u06F9]/.test(ch)) return "EN";
  if (/[\u0660-\u0669\u{10D30}-\u{10D39}]/u.test(ch)) return "AN";
  if (/[\u0590-\u08FF\uFB1D-\uFDFF\uFE70-\uFEFF\u{10800}-\u{10FFF}\u{1E800}-\u{1EFFF}]/u.test(ch)) return "R";
  if (/[+-]/.test(ch)) return "ES";
  if (/[#$%]/.test(ch)) return "ET";
  if (/[,.]/.test(ch)) return "CS";
  if (/[\p{L}\p{Mc}\p{Nd}\u0F0B\u3007]/u.test(ch)) return "L";
  return "ON";
}

// RFC 5893 §2, which RFC 8265 applies only to names containing right-to-left characters (R, AL
// or AN, as RFC 5893 §1.4 defines an RTL label). With one present, rules 1 and 5 together
// demand an R first.
function findBidiFault(chars: string[]): string | undefined {
  const classes = chars.map(bidiClassOf);
  if (!classes.some((c) => c === "R" || c === "AN")) return undefined;
  const last = classes.filter((c) => c !== "NSM").at(-1);
  const valid =
    classes[0] === "R" &&
    !classes.includes("L") &&
    (last === "R" || last === "EN" || last === "AN") &&
    !(classes.includes("EN") && classes.includes("AN"));
  if (valid) return undefined;
  return "username mixes right-to-left and left-to-right text in a way the Bidi Rule (RFC 5893) forbids";
}

function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function refuse(reason: string): UsernameCheck {
  return { ok: false, reason };
}

/** The name an operator typed, in the form accounts are stored under when it is a valid name. */
export function nameForLookup(name: string): string {
  const prepared = prepareUsername(name);
  return prepared.ok ? prepared.username : name;
}
