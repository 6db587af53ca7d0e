import type { AccountTarget } from "../accounts/target.ts";

// The small interfaces the domain asks for. The composition root (context.ts) hands in the
// implementations; nothing in domain/ imports the context, the mail sender or the routes.

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Where randomness comes from; tests may swap it, production uses the CSPRNG (secrets.ts). */
export type RandomSource = (size: number) => Buffer;

/** Seals what an outbox item carries, so the store never holds it in the clear (secrets.ts' Sealer). */
export interface PayloadSealer {
  seal(plain: string): string;
  open(sealed: string): string;
}

/** Tells the outbox sender there is new work, so mail does not wait for its next poll. */
export type OutboxNotifier = () => void;

/** The events the domain logs: fields first, then the message, as pino takes them. */
export interface EventLog {
  info(fields: Record<string, unknown>, message: string): void;
}

/** The account servers of accounts.provision in force (a reload may change them); jobs find theirs by name. */
export interface TargetDirectory {
  list(): readonly AccountTarget[];
  get(name: string): AccountTarget | undefined;
}

// A target is a plain client (src/accounts/target.ts): it knows no store, config file or route.
export type { AccountTarget };
