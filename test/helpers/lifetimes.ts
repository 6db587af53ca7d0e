import { createServer } from "node:net";

/**
 * What one test started — a service, child processes, an SMTP sink, a temporary directory —
 * closed in one place, newest first, however the test ends.
 */
export class Lifetimes {
  private readonly closers: (() => unknown)[] = [];

  /** `thing`, to be closed with `close` when the test ends. */
  own<T>(thing: T, close: (thing: T) => unknown): T {
    this.defer(() => close(thing));
    return thing;
  }

  /** Runs `close` when the test ends, in the same order as what is owned. */
  defer(close: () => unknown): void {
    this.closers.push(close);
  }

  /** Closes everything owned, newest first; one failure does not keep the rest open. */
  async closeAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const close of this.closers.splice(0).reverse()) {
      try {
        await close();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, "several test resources failed to close");
  }
}

/** Polls `check` until it returns something truthy; fails after `timeoutMs` saying what it waited for. */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 25, what = "a condition" }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A port that was free a moment ago: listen on 0, note the port, close. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
