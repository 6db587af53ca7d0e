import type { Command } from "commander";
import { configWarnings, loadConfigWithSources, resolveConfigPath } from "../config.ts";
import { configReport, describeSource } from "../config-report.ts";
import { compileRules } from "../domain/filters.ts";
import { Templates } from "../templates.ts";
import { configOption, type Io } from "./common.ts";

export function registerCheckConfig(program: Command, io: Io): void {
  program
    .command("check-config")
    .description("validate a config file; show each value, where it came from (default, file, env), secrets masked")
    .addOption(configOption())
    .action((opts: { config?: string }) => {
      const loaded = loadConfigWithSources(resolveConfigPath(opts.config));
      compileRules(loaded.config);
      // templates.dir and languages: a template that would stop start-up is reported here too.
      new Templates(loaded.config);
      io.out(`config ok: ${loaded.file}`);
      const lines = configReport(loaded).map((line) => ({ ...line, from: describeSource(line.source) }));
      const keyWidth = Math.max(...lines.map((line) => line.key.length));
      const fromWidth = Math.max(...lines.map((line) => line.from.length));
      for (const line of lines) io.out(`  ${line.key.padEnd(keyWidth)}  ${line.from.padEnd(fromWidth)}  ${line.value}`);
      // A valid file is valid: the warnings go to stderr and the exit code stays 0.
      for (const warning of configWarnings(loaded.config, loaded.file)) io.err(`warning: ${warning}`);
    });
}
