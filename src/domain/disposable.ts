import { domainToASCII } from "node:url";
import { disposableEmailBlocklist } from "disposable-email-domains-js";

let listed: Set<string> | null = null;

/** About 9,000 names: read on first use, so a gate that never blocks them never loads them. */
function disposableDomains(): Set<string> {
  listed ??= new Set(disposableEmailBlocklist().map((domain) => domain.trim().toLowerCase()));
  return listed;
}

/**
 * The listed domain that makes `mail` a disposable address: its own domain or any parent of it
 * (providers hand out sub.mailinator.com too), or null. The list holds internationalized names
 * in their xn-- form, so a Unicode domain is looked up in that form as well.
 */
export function findDisposableDomain(mail: string): string | null {
  const at = mail.lastIndexOf("@");
  if (at < 0) return null;
  const domain = mail.slice(at + 1).trim().toLowerCase().replace(/\.$/, "");
  const domains = disposableDomains();
  for (const name of new Set([domain, domainToASCII(domain)])) {
    const labels = name.split(".");
    // Stop before the bare top-level label: a list entry is always a registrable name.
    for (let i = 0; i < labels.length - 1; i++) {
      const candidate = labels.slice(i).join(".");
      if (domains.has(candidate)) return candidate;
    }
  }
  return null;
}
