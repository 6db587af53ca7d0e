#!/usr/bin/env node
// Runs the compiled JavaScript in dist/ (`npm run build`, which `npm ci` runs through `prepare`):
// production needs neither tsx nor esbuild.
try {
  await import("../dist/bin.js");
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes("/dist/bin.js")) throw err;
  process.stderr.write("gatehouse: dist/ is not built; run `npm run build` (`npm ci` does it)\n");
  process.exitCode = 1;
}
