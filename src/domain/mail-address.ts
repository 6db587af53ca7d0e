import { toASCII, toUnicode } from "tr46";
import validator from "validator";

/**
 * A mail address in the one form gatehouse filters, hashes and mails (DESIGN §7 "Identities").
 * Only `canonicalMail` makes one, so a raw address cannot reach a filter, a hash or the outbox by mistake.
 */
export type CanonicalMail = string & { readonly __canonical: unique symbol };

// Strict UTS #46 for a mail domain (letters, digits, hyphens per label; right-to-left and joiner
// rules), except the hyphen positions: deliverable ASCII names such as "r3---sn.example" have them.
const UTS46 = { checkBidi: true, checkJoiners: true, useSTD3ASCIIRules: true, checkHyphens: false } as const;

/**
 * Trimmed; the domain through UTS #46 to its ASCII form (so `bücher.example` and `xn--bcher-kva.example`
 * are one, and an ideographic full stop is a dot), its trailing dot dropped; and the whole address
 * lower-cased, as DESIGN §7 says. The local part is also put in NFC, so one Unicode mailbox has one
 * spelling; for a plain ASCII address this is exactly the old `trim().toLowerCase()`, so the mail
 * hashes stored by earlier versions still match. Null when the domain fails UTS #46.
 */
export function canonicalMail(input: string): CanonicalMail | null {
  const trimmed = input.trim();
  const at = trimmed.lastIndexOf("@");
  if (at <= 0) return null;
  const raw = trimmed.slice(at + 1);
  const domain = PLAIN_DOMAIN.test(raw) ? plainDomain(raw) : uts46Domain(raw);
  if (domain === null) return null;
  return `${trimmed.slice(0, at).toLowerCase().normalize("NFC")}@${domain}` as CanonicalMail;
}

// Letters, digits and hyphens, no xn-- label: what nearly every address has. For these UTS #46
// is lower case and nothing else, and tr46 costs ~50 µs a call on the refusal path, so they skip it;
// test/domain/identities.test.ts checks that both ways agree.
const PLAIN_DOMAIN = /^(?:(?!xn--)[a-z0-9-]{1,63}\.)*(?!xn--)[a-z0-9-]{1,63}\.?$/i;

function plainDomain(domain: string): string | null {
  const name = (domain.endsWith(".") ? domain.slice(0, -1) : domain).toLowerCase();
  return name.length <= 253 ? name : null;
}

/** A domain through UTS #46 (tr46) to its ASCII form, its trailing dot dropped; null when it fails. */
export function uts46Domain(domain: string): string | null {
  const mapped = toASCII(domain, UTS46);
  if (mapped === null) return null;
  // Only after mapping: U+3002 and its kin become the dot that is dropped here.
  return toASCII(mapped.endsWith(".") ? mapped.slice(0, -1) : mapped, { ...UTS46, verifyDNSLength: true });
}

const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Addresses validator's isEmail (default options) certainly accepts: ASCII, at most 254 characters,
 * a dot-atom local part of at most 64, labels of letters, digits and inner hyphens, a TLD of letters.
 * Nearly every address is one, and isEmail costs ~6 µs on the refusal path (options merged, two
 * byte lengths through encodeURI, the domain split and tested label by label); anything else still
 * goes to isEmail. test/http/decode-fast-paths.test.ts checks that isEmail accepts every match.
 */
const LOCAL_ATOM = "[a-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
export const PLAIN_VALID_MAIL = new RegExp(`^(?=.{1,254}$)(?=[^@]{1,64}@)${LOCAL_ATOM}(?:\\.${LOCAL_ATOM})*@(?:${LABEL}\\.)+[a-z]{2,63}$`);

/**
 * DESIGN §3 row 4's "mail not an address", for the HTTP body and `filters test` alike: at most 254
 * characters, a domain that passes UTS #46, and an address by validator's rules once canonical.
 */
export function parseMail(text: string): CanonicalMail | null {
  // validator's isEmail throws (encodeURI) on a lone surrogate, which no address contains anyway.
  if (text.length > 254 || LONE_SURROGATE.test(text)) return null;
  const mail = canonicalMail(text);
  return mail !== null && (PLAIN_VALID_MAIL.test(mail) || validator.isEmail(mail)) ? mail : null;
}


/**
 * The address as filters see it: its ASCII form and, for an internationalized domain, its Unicode
 * form too, so a filter written for either spelling of a domain refuses both.
 */
export function mailSpellings(mail: CanonicalMail): string[] {
  const at = mail.lastIndexOf("@");
  const domain = mail.slice(at + 1);
  if (!domain.split(".").some((label) => label.startsWith("xn--"))) return [mail];
  const unicode = toUnicode(domain, UTS46);
  return unicode.error ? [mail] : [mail, `${mail.slice(0, at)}@${unicode.domain}`];
}
