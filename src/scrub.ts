/**
 * Text another server sent us (an SMTP reply, a receiver's error) goes through here before it is
 * logged or stored (DESIGN §7 "Secrets at rest"): servers echo the recipient back, as in
 * `550 5.1.1 <bob@example.org>: Recipient address rejected`. Reply codes and enhanced status codes
 * stay; anything address-like goes: addresses with or without <>, %40-encoded ones, whatever stands
 * in <> or in quotes (where servers put a bare local part), and the addresses we know we sent to,
 * with their local parts, wherever they appear. What is left is cut to MAX_LENGTH characters.
 */

export const SCRUBBED = "[address]";
const MAX_LENGTH = 500;

// Characters that end an address written into prose.
const EDGE = String.raw`[^\s<>()[\]{},;:"'\x60]`;
const AT_SIGN = new RegExp(`${EDGE}*(?:@|%40)${EDGE}+`, "giu");
const IN_ANGLES = /<[^<>\r\n]+>/g;
const DOUBLE_QUOTED = /"[^"\r\n]{1,256}"/g;
// Apostrophes inside words ("Can't send mail") are not quotes.
const SINGLE_QUOTED = /(?<![\p{L}\p{N}])'[^'\r\n]{1,256}'(?![\p{L}\p{N}])/gu;

// What may stand on either side of a known address or local part for it to count as a whole word.
const WORD_CHAR = /[\p{L}\p{N}_%+-]/u;

/** `text` with each whole-word, case-insensitive occurrence of `part` replaced. */
function replaceWord(text: string, part: string): string {
  const lower = text.toLowerCase();
  const needle = part.toLowerCase();
  // toLowerCase keeps lengths for the text servers send; where it does not, indices would drift.
  if (needle === "" || lower.length !== text.length) return text;
  let out = "";
  let from = 0;
  for (let i = lower.indexOf(needle); i >= 0; i = lower.indexOf(needle, i + 1)) {
    const before = text[i - 1] ?? "";
    const after = text.slice(i + needle.length, i + needle.length + 2);
    const joined = WORD_CHAR.test(before) || before === "." || WORD_CHAR.test(after[0] ?? "") || (after[0] === "." && WORD_CHAR.test(after[1] ?? ""));
    if (joined || i < from) continue;
    out += text.slice(from, i) + SCRUBBED;
    from = i + needle.length;
  }
  return out + text.slice(from);
}

/** `text` with every address-like part replaced by "[address]"; `known` are addresses this text may name. */
export function scrubRemoteText(text: string, known: readonly string[] = []): string {
  let scrubbed = text;
  for (const address of known) {
    const at = address.lastIndexOf("@");
    scrubbed = replaceWord(scrubbed, address);
    // The bare local part, as a whole word only: a short one must not eat the same letters inside other words.
    if (at > 0) scrubbed = replaceWord(scrubbed, address.slice(0, at));
  }
  scrubbed = scrubbed
    .replace(IN_ANGLES, `<${SCRUBBED}>`)
    .replace(DOUBLE_QUOTED, `"${SCRUBBED}"`)
    .replace(SINGLE_QUOTED, `'${SCRUBBED}'`)
    .replace(AT_SIGN, SCRUBBED);
  return scrubbed.length > MAX_LENGTH ? `${scrubbed.slice(0, MAX_LENGTH - 1)}…` : scrubbed;
}
