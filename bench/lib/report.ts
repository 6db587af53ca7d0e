import type { Measurement } from "./load.ts";

export interface Row {
  /** `phase/scenario`, unique in a run. */
  key: string;
  label: string;
  /** The status the scenario's answers must have. */
  status: number | null;
  measurement: Measurement | null;
  /** What the target compares with: the bare Koa baseline, the hash-bound limit, the empty store… */
  baselineText: string;
  baselineValue: number | null;
  ratio: number | null;
  ratioText: string;
  target: string;
  /** null: reported only, no target. */
  pass: boolean | null;
  /** False when answers had other statuses than the scenario's: the figure does not measure it. */
  statusOk: boolean;
  /** The bare Koa baseline for the same status and body size, whatever the target compares with. */
  koa: Measurement | null;
  notes: string[];
}

export function fmtRate(value: number): string {
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function fmtMs(value: number): string {
  return value.toFixed(2);
}

export function fmtMb(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** CPU used during the measured run: the gatehouse server, the load generator, everything else. */
function cores(m: Measurement | null): string {
  const cpu = m?.cpu;
  if (!cpu) return "";
  const part = (value: number | undefined) => (value === undefined ? "-" : value.toFixed(2));
  return `${part(cpu.processes["gatehouse"])}/${part(cpu.processes["client"])}/${part(cpu.other)}`;
}

function verdict(row: Row): string {
  if (!row.statusOk) return "BAD STATUS";
  if (row.pass === null) return "info";
  return row.pass ? "pass" : "FAIL";
}

export function formatTable(rows: readonly Row[]): string {
  const header = ["scenario", "status", "req/s", "p50 ms", "p99 ms", "baseline", "ratio", "target", "result", "cores gh/client/other"];
  const body = rows.map((row) => [
    row.label,
    row.status === null ? "" : String(row.status),
    row.measurement ? fmtRate(row.measurement.reqPerSec) : "",
    row.measurement ? fmtMs(row.measurement.p50Ms) : "",
    row.measurement ? fmtMs(row.measurement.p99Ms) : "",
    row.baselineText,
    row.ratioText,
    row.target,
    verdict(row),
    cores(row.measurement),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const numeric = new Set([2, 3, 4]);
  const line = (cells: string[]) =>
    cells.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}
