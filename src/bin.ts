// The process entry: bin/gatehouse.js runs its compiled form from dist/, the tests run it from
// the sources through tsx (test/helpers/process.ts), so both run the same command.
import { runCli } from "./cli/index.ts";

process.exitCode = await runCli(process.argv.slice(2));
