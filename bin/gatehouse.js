#!/usr/bin/env node
// The TypeScript sources run as they are through tsx, so `npm ci` is the only build step.
import { register } from "tsx/esm/api";

register();
const { runCli } = await import("../src/cli/index.ts");
process.exitCode = await runCli(process.argv.slice(2));
