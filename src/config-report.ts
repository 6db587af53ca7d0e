import { childrenOf, sourceOf, type LoadedConfig, type SchemaNode, type ValueSource } from "./config.ts";

// What `check-config` shows of a config: every key, where its value came from, and the value with
// anything secret masked. The rules go by key names and URL shapes, not by a list of keys, so a
// key added to the schema later is masked as soon as its name says what it holds.

export const MASK = "********";

/** Names of keys whose text is a secret: `secret`, `authTokens`, `password`, `bindPassword`, nodemailer's `auth.pass`, … */
const SENSITIVE_KEY = /secret|token|passw|^pass$|^pwd$|credential|private.?key|api.?key|^key$/i;
/** Query parameters that carry a credential in a URL (`?access_token=…`). */
const SENSITIVE_PARAM = /secret|token|passw|^pass$|^pwd$|credential|sig|^key$|api.?key|auth/i;

/** `text` with the credentials of a URL in it masked: `postgres://u:pw@h` → `postgres://u:********@h`. */
export function maskUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // Not a URL after all, yet shaped like one: what sits before an @ may be a credential.
    return text.replace(/\/\/[^/@]*@/, `//${MASK}@`);
  }
  let changed = false;
  if (url.password) {
    url.password = MASK;
    changed = true;
  } else if (url.username) {
    // A lone user part is often a token (`redis://TOKEN@host`, `https://TOKEN@hooks…`).
    url.username = MASK;
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SENSITIVE_PARAM.test(name)) {
      url.searchParams.set(name, MASK);
      changed = true;
    }
  }
  return changed ? url.toString() : text;
}

/** `value` as it may be shown: strings under a secret-sounding key masked, URL credentials masked everywhere. */
export function maskSecrets(value: unknown, sensitive = false): unknown {
  if (typeof value === "string") return sensitive ? MASK : maskUrl(value);
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, sensitive));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, maskSecrets(item, sensitive || SENSITIVE_KEY.test(key))]));
  }
  return value;
}

/** Where a `storage` URL points, for messages: the SQLite file, or the URL without its password. */
export function describeStorage(storage: string): string {
  return storage.startsWith("sqlite:") ? storage.slice("sqlite:".length) : maskUrl(storage);
}

export interface ReportLine {
  /** The dotted key path, e.g. register.authTokens. */
  key: string;
  source: ValueSource;
  /** The value as JSON, masked; "(not set)" for an optional key left out. */
  value: string;
}

export function describeSource(source: ValueSource): string {
  switch (source.kind) {
    case "default":
      return "default";
    case "file":
      return "file";
    case "env":
      return `env ${source.variable}`;
    case "env-file":
      return `file via ${source.variable} (${source.file})`;
  }
}

/**
 * One line per key of the schema, down to the leaves: an array, a union (mail.transport) or an
 * object left out is shown whole.
 */
export function configReport(loaded: LoadedConfig, node?: SchemaNode, path: string[] = [], sensitive = false): ReportLine[] {
  return childrenOf(node).flatMap(([key, child]) => {
    const at = [...path, key];
    const secret = sensitive || SENSITIVE_KEY.test(key);
    const value = at.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], loaded.config);
    if (child.properties && value !== null && typeof value === "object" && !Array.isArray(value)) {
      return configReport(loaded, child, at, secret);
    }
    return [{
      key: at.join("."),
      source: sourceOf(loaded, at),
      value: value === undefined ? "(not set)" : JSON.stringify(maskSecrets(value, secret)),
    }];
  });
}
