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

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** `text` with every address-like part replaced by "[address]"; `known` are addresses this text may name. */
export function scrubRemoteText(text: string, known: readonly string[] = []): string {
  let scrubbed = text;
  for (const address of known) {
    const at = address.lastIndexOf("@");
    for (const part of new Set([address, at > 0 ? address.slice(0, at) : ""])) {
      if (part === "") continue;
      // As a whole word only: a short local part must not eat the same letters inside other words.
      const word = new RegExp(`(?<![\\p{L}\\p{N}._%+-])${escapeRegExp(part)}(?![\\p{L}\\p{N}_%+-]|\\.[\\p{L}\\p{N}])`, "giu");
      scrubbed = scrubbed.replace(word, SCRUBBED);
    }
  }
  scrubbed = scrubbed
    .replace(IN_ANGLES, `<${SCRUBBED}>`)
    .replace(DOUBLE_QUOTED, `"${SCRUBBED}"`)
    .replace(SINGLE_QUOTED, `'${SCRUBBED}'`)
    .replace(AT_SIGN, SCRUBBED);
  return scrubbed.length > MAX_LENGTH ? `${scrubbed.slice(0, MAX_LENGTH - 1)}…` : scrubbed;
}
