import { InvalidArgumentError, Option } from "commander";

/** Where a command prints: stdout and stderr, or what a test captures. */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const defaultIo: Io = {
  out: (line) => process.stdout.write(line + "\n"),
  err: (line) => process.stderr.write(line + "\n"),
};

/** A failure the user caused or must fix: printed to stderr, exit 1. */
export class CliError extends Error {}

export function configOption(): Option {
  return new Option("-c, --config <file>", "config file (default ./config.json, else config.example.json)");
}

export function positiveInt(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new InvalidArgumentError("must be a positive whole number");
  return Number(value);
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
