import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT } from "./processes.ts";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTimeEntry {
  function: string;
  location: string;
  selfMs: number;
  /** Share of the time the process was not idle. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  busyMs: number;
  top: SelfTimeEntry[];
  /** Self time rolled up by where the code comes from: gatehouse's src/, a package, node itself. */
  areas: { area: string; selfMs: number; share: number }[];
}

function areaOf(frame: CallFrame): string {
  if (!frame.url) return frame.functionName.startsWith("(") ? frame.functionName : "native (syscalls, V8 builtins)";
  if (frame.url.startsWith("node:")) return "node internals";
  const path = frame.url.startsWith("file://") ? new URL(frame.url).pathname : frame.url;
  const inPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
  if (inPackage) return inPackage[1]!;
  // The server runs dist/ (npm run build), compiled one file per file of src/.
  if (path.startsWith(join(ROOT, "src")) || path.startsWith(join(ROOT, "dist"))) return "gatehouse src/";
  return "other";
}

function locate(frame: CallFrame): string {
  if (!frame.url) return "";
  const path = frame.url.startsWith("file://") ? new URL(frame.url).pathname : frame.url;
  const shown = path.startsWith(ROOT) ? relative(ROOT, path) : path;
  // Sources compiled by tsx report most functions on line 1; the file alone says more then.
  return frame.lineNumber > 0 ? `${shown}:${frame.lineNumber + 1}` : shown;
}

/** Milliseconds since the process started: the part of a profile a measurement covered. */
export interface ProfileWindow {
  fromMs: number;
  toMs: number;
}

/**
 * Self time per function (summed over every place it was called from), from a `--cpu-prof` file;
 * with a window, only the samples inside it, so start-up and warm-up stay out.
 */
export function summarizeProfile(file: string, window: ProfileWindow | null, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byNode = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const selfUs = new Map<string, { frame: CallFrame; us: number }>();
  let totalUs = 0;
  let idleUs = 0;
  let clockUs = 0;
  // Each sample's time is the delta that follows it.
  for (let i = 0; i < profile.samples.length; i++) {
    clockUs += profile.timeDeltas[i] ?? 0;
    if (window && (clockUs < window.fromMs * 1000 || clockUs > window.toMs * 1000)) continue;
    const frame = byNode.get(profile.samples[i]!);
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (!frame) continue;
    totalUs += us;
    if (frame.functionName === "(idle)") idleUs += us;
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}:${frame.columnNumber}`;
    const entry = selfUs.get(key);
    if (entry) entry.us += us;
    else selfUs.set(key, { frame, us });
  }
  const busyUs = totalUs - idleUs;
  const byArea = new Map<string, number>();
  for (const { frame, us } of selfUs.values()) {
    if (frame.functionName === "(idle)") continue;
    const area = areaOf(frame);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const areas = [...byArea.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([area, us]) => ({ area, selfMs: us / 1000, share: busyUs > 0 ? us / busyUs : 0 }));
  const entries = [...selfUs.values()]
    .filter((e) => e.frame.functionName !== "(idle)")
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({
      function: e.frame.functionName || "(anonymous)",
      location: locate(e.frame),
      selfMs: e.us / 1000,
      share: busyUs > 0 ? e.us / busyUs : 0,
    }));
  return { file, totalMs: totalUs / 1000, busyMs: busyUs / 1000, top: entries, areas };
}

export function formatProfile(summary: ProfileSummary, name: string): string {
  const lines = [
    `profile ${name}: ${(summary.busyMs / 1000).toFixed(1)} s busy of ${(summary.totalMs / 1000).toFixed(1)} s (main thread)`,
    `  ${"self ms".padStart(9)}  ${"busy".padStart(6)}  function (location)`,
  ];
  for (const entry of summary.top) {
    lines.push(
      `  ${entry.selfMs.toFixed(0).padStart(9)}  ${(entry.share * 100).toFixed(1).padStart(5)}%  ${entry.function}${entry.location ? ` (${entry.location})` : ""}`,
    );
  }
  lines.push(`  by area: ${summary.areas.map((a) => `${a.area} ${(a.share * 100).toFixed(0)}%`).join(", ")}`);
  return lines.join("\n");
}
