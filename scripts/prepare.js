// `npm ci` / `npm install` run this (package.json "prepare"): it builds dist/. An install without
// devDependencies (`npm ci --omit=dev` on a host that was shipped a built dist/) has no TypeScript
// to build with; it keeps the dist/ it was given rather than failing the install.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";

const root = new URL("..", import.meta.url);
let typescript = true;
try {
  createRequire(import.meta.url).resolve("typescript");
} catch {
  typescript = false;
}
if (!typescript) {
  if (existsSync(new URL("dist/bin.js", root))) {
    console.log("gatehouse: TypeScript is not installed (devDependencies omitted); using the dist/ that is there");
    process.exit(0);
  }
  console.error("gatehouse: dist/ is not built and TypeScript is not installed: install with devDependencies (`npm ci`), or ship a built dist/");
  process.exit(1);
}
const build = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
process.exit(build.status ?? 1);
