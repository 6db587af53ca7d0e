import ipaddr from "ipaddr.js";
import type { Config } from "../config.ts";
import { reservedSkeletons } from "./accounts.ts";
import { findDisposableDomain } from "./disposable.ts";
import { mailSpellings, parseMail, type CanonicalMail } from "./mail-address.ts";
import { sha256 } from "./secrets.ts";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** The config's lists, parsed once per (re)load rather than on every request. */
export interface Rules {
  blacklist: Range[];
  whitelist: Range[];
  mailFilters: { source: string; pattern: RegExp }[];
  /** The UTS #39 confusable skeletons of accounts.reservedUsernames, after nodeprep. */
  reservedSkeletons: Set<string>;
  /** register.blockDisposable: refuse addresses on a disposable-mail domain or a subdomain of one. */
  blockDisposable: boolean;
  /** SHA-256 of each of register.authTokens, so a request hashes only the token it presents. */
  authTokenDigests: Buffer[];
}

const OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
const DOTTED_QUAD = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);

/** Parses an address, folding IPv4-mapped IPv6 (::ffff:1.2.3.4) to plain IPv4. Null when it is not an IP. */
export function parseIp(text: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const trimmed = text.trim();
  // The common case, without ipaddr's several parsing passes: what isValidFourPartDecimal accepts.
  if (DOTTED_QUAD.test(trimmed)) return new ipaddr.IPv4(trimmed.split(".").map(Number));
  if (!ipaddr.isValid(trimmed)) return null;
  // ipaddr accepts legacy forms such as "0x7f.1" or "127.1"; an address from a website must be canonical.
  if (trimmed.includes(".") && !trimmed.includes(":") && !ipaddr.IPv4.isValidFourPartDecimal(trimmed)) return null;
  try {
    return ipaddr.process(trimmed);
  } catch {
    return null;
  }
}

/**
 * The key an address is rate-limited under: IPv4 as it is, IPv6 by its network of `ipv6Prefix`
 * bits, because one subscriber gets a whole /64 (or more) and can step through it at will.
 * Text that is not an address (a socket already gone) is its own key.
 */
export function addressKey(address: string | ipaddr.IPv4 | ipaddr.IPv6, ipv6Prefix: number): string {
  const ip = typeof address === "string" ? parseIp(address) : address;
  if (!ip) return String(address);
  if (ip.kind() === "ipv4") return ip.toString();
  return `${ipaddr.IPv6.networkAddressFromCIDR(`${ip.toString()}/${ipv6Prefix}`).toString()}/${ipv6Prefix}`;
}

function toRange(entry: string): Range {
  if (entry.includes("/")) {
    const [addr, bits] = ipaddr.parseCIDR(entry);
    if (addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
    }
    return [addr, bits];
  }
  const addr = ipaddr.process(entry);
  return [addr, addr.kind() === "ipv4" ? 32 : 128];
}

export function compileRules(config: Config): Rules {
  return {
    blacklist: config.register.blacklist.map(toRange),
    whitelist: config.register.whitelist.map(toRange),
    mailFilters: config.register.filteredMails.map((source) => ({ source, pattern: new RegExp(source, "i") })),
    reservedSkeletons: reservedSkeletons(config.accounts.reservedUsernames),
    blockDisposable: config.register.blockDisposable,
    authTokenDigests: config.register.authTokens.map(sha256),
  };
}

export function findRange(ip: ipaddr.IPv4 | ipaddr.IPv6, ranges: Range[]): string | null {
  for (const [addr, bits] of ranges) {
    if (addr.kind() === ip.kind() && ip.match(addr, bits)) return `${addr.toString()}/${bits}`;
  }
  return null;
}

/** The first filter that matches the address in its ASCII or its Unicode spelling. */
export function findMailFilter(mail: CanonicalMail, rules: Rules): string | null {
  if (rules.mailFilters.length === 0) return null;
  const spellings = mailSpellings(mail);
  for (const filter of rules.mailFilters) {
    if (spellings.some((spelling) => filter.pattern.test(spelling))) return filter.source;
  }
  return null;
}

/** The disposable-mail domain that refuses `mail`, when the gate blocks them; null otherwise. */
export function findDisposableBlock(mail: CanonicalMail, rules: Rules): string | null {
  return rules.blockDisposable ? findDisposableDomain(mail) : null;
}

export interface FilterVerdict {
  allowed: boolean;
  reasons: string[];
}

/** What `gatehouse filters test` prints: every rule that would refuse this address and mail, or that exempts it. */
export function explainFilters(rules: Rules, ipText: string, mailText: string): FilterVerdict & { notes: string[] } {
  const reasons: string[] = [];
  const notes: string[] = [];
  const ip = parseIp(ipText);
  if (!ip) reasons.push(`${JSON.stringify(ipText)} is not an IP address (400)`);
  else {
    const black = findRange(ip, rules.blacklist);
    if (black) reasons.push(`ip ${ip.toString()} is blacklisted by ${black} (403)`);
    const white = findRange(ip, rules.whitelist);
    if (white) notes.push(`ip ${ip.toString()} is whitelisted by ${white}: exempt from throttling`);
  }
  const mail = parseMail(mailText);
  if (mail === null) {
    reasons.push(`${JSON.stringify(mailText)} is not a mail address (400)`);
    return { allowed: false, reasons, notes };
  }
  // The admin sees the form that is filtered, hashed and mailed, and why it may differ from what was typed.
  if (mail !== mailText) notes.push(`mail is checked as ${mailSpellings(mail).join(" and ")}`);
  const filter = findMailFilter(mail, rules);
  if (filter) reasons.push(`mail matches filter ${JSON.stringify(filter)} (403)`);
  const disposable = findDisposableBlock(mail, rules);
  if (disposable) reasons.push(`mail domain ${disposable} is on the disposable-mail list and register.blockDisposable is on (403)`);
  return { allowed: reasons.length === 0, reasons, notes };
}
