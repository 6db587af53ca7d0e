import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { CanonicalMail } from "./mail-address.ts";
import type { PayloadSealer, RandomSource } from "./ports.ts";

/**
 * The CSPRNG, drawn from in 4 KiB blocks: each randomBytes call costs about 7 µs whatever its size
 * (a profile of the invites API showed it at 11 % of a request), and a request wants two or three
 * small draws. Every byte is handed out once, copied out of the block and wiped from it; a draw
 * larger than a quarter block goes to randomBytes directly.
 */
const RANDOM_BLOCK = 4096;
let randomBlock = Buffer.alloc(0);
let randomOffset = 0;

export const cryptoRandom: RandomSource = (size) => {
  if (size > RANDOM_BLOCK / 4) return randomBytes(size);
  if (randomOffset + size > randomBlock.length) {
    randomBlock = randomBytes(RANDOM_BLOCK);
    randomOffset = 0;
  }
  const end = randomOffset + size;
  const drawn = Buffer.from(randomBlock.subarray(randomOffset, end));
  randomBlock.fill(0, randomOffset, end);
  randomOffset = end;
  return drawn;
};

/** A URL-safe token with 256 bits of entropy. */
export function createToken(random: RandomSource, bytes = 32): string {
  return random(bytes).toString("base64url");
}

/**
 * A short public name (API key id, invite handle): hex, so it never starts with "-" and is read
 * as an option when an admin passes it to the CLI. 40 bits keep collisions out of reach.
 */
export function createHandle(random: RandomSource): string {
  return random(5).toString("hex");
}

/** Tokens are high-entropy, so a plain SHA-256 is enough to store them without making them usable. */
export function hashToken(token: string): string {
  return hash("sha256", token, "hex");
}

/** A secret's digest, to compare in constant time whatever its length. */
export function sha256(text: string): Buffer {
  return hash("sha256", text, "buffer");
}

/** Addresses are low-entropy: only a keyed hash keeps them from being guessed back out of the store. */
export function hashMail(secret: string, mail: CanonicalMail): string {
  return createHmac("sha256", secret).update(mail, "utf8").digest("hex");
}

/**
 * Compares a presented secret with every accepted one, given as sha256 digests, without
 * short-circuiting, so neither the position of a match nor the length of a candidate shows in the timing.
 */
export function matchesAnySecret(presented: string, acceptedDigests: readonly Buffer[]): boolean {
  const digest = sha256(presented);
  let found = false;
  for (const other of acceptedDigests) found = timingSafeEqual(digest, other) || found;
  return found;
}

function sign(secret: string, payload: string): string {
  return createHmac("sha256", secret).update(payload, "utf8").digest("hex");
}

/**
 * The x-gatehouse-signature of a webhook or account-target request: `t=SECONDS,v1=HMAC-SHA256(secret, "t.body")`,
 * signed over the timestamp too so a receiver can refuse stale replays.
 */
export function signatureHeader(secret: string, body: string, nowMs: number): string {
  const timestamp = Math.floor(nowMs / 1000).toString();
  return `t=${timestamp},v1=${sign(secret, `${timestamp}.${body}`)}`;
}

/**
 * Outbox payloads carry what one mail needs (the address, the link with its token) until it is sent;
 * they are sealed with a key derived from the service secret so the database file never holds them in the clear.
 */
export class Sealer implements PayloadSealer {
  readonly #key: Buffer;
  constructor(secret: string) {
    this.#key = Buffer.from(hkdfSync("sha256", secret, "gatehouse", "outbox-payload", 32));
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
  }

  open(sealed: string): string {
    const data = Buffer.from(sealed, "base64");
    const decipher = createDecipheriv("aes-256-gcm", this.#key, data.subarray(0, 12));
    decipher.setAuthTag(data.subarray(12, 28));
    return Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString("utf8");
  }
}

/** The two HMAC keys of ALTCHA challenges (the challenge's and its derived key's), derived from the service secret. */
export interface PowKeys {
  challenge: string;
  derivedKey: string;
}

export function derivePowKeys(secret: string): PowKeys {
  const derive = (info: string) => Buffer.from(hkdfSync("sha256", secret, "gatehouse", info, 32)).toString("hex");
  return { challenge: derive("altcha-challenge"), derivedKey: derive("altcha-derived-key") };
}
