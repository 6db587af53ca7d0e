import { hash, verify } from "@node-rs/argon2";

/** OWASP's minimum for Argon2id: m=19 MiB, t=2, p=1. */
export const ARGON2_OPTIONS = {
  algorithm: 2, // Argon2id; the package's const enum cannot be imported under isolated modules
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1,
} as const;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

/** Password length counts characters as a person sees them, not UTF-16 units. */
export function passwordLength(password: string): number {
  return [...password].length;
}
