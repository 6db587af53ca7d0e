import { timingSafeEqual } from "node:crypto";
import type { ApiKeyRecord, Store } from "../store/store.ts";
import type { Clock, RandomSource } from "./ports.ts";
import { createHandle, createToken, hashToken } from "./secrets.ts";

export interface KeyDeps {
  store: Store;
  clock: Clock;
  random: RandomSource;
}

export interface CreatedApiKey {
  id: string;
  name: string;
  /** `ID/SECRET`, shown once: only the secret's hash is kept. */
  key: string;
}

/** Like mod_invites_api: a short public id and a secret, presented together as ID/SECRET. */
export async function createApiKey(deps: KeyDeps, name = ""): Promise<CreatedApiKey> {
  const id = createHandle(deps.random);
  const secret = createToken(deps.random, 32);
  await deps.store.insertApiKey({ id, name, secretHash: hashToken(secret), createdAt: deps.clock.now() });
  return { id, name, key: `${id}/${secret}` };
}

export function listApiKeys(deps: Pick<KeyDeps, "store">): Promise<ApiKeyRecord[]> {
  return deps.store.listApiKeys();
}

export function deleteApiKey(deps: Pick<KeyDeps, "store">, id: string): Promise<boolean> {
  return deps.store.deleteApiKey(id);
}

// Compared against when the id is unknown, so a wrong id and a wrong secret take the same path.
const NO_KEY_HASH = hashToken("no such key");

/** The key an `ID/SECRET` string names, when the secret is right; compared in constant time. */
export async function authenticateApiKey(deps: Pick<KeyDeps, "store">, presented: string | undefined): Promise<ApiKeyRecord | null> {
  if (!presented) return null;
  const slash = presented.indexOf("/");
  if (slash <= 0 || presented.length > 512) return null;
  const id = presented.slice(0, slash);
  const secret = presented.slice(slash + 1);
  const key = await deps.store.findApiKey(id);
  const expected = Buffer.from(key?.secretHash ?? NO_KEY_HASH, "hex");
  const actual = Buffer.from(hashToken(secret), "hex");
  const same = timingSafeEqual(expected, actual);
  return key && same ? key : null;
}
