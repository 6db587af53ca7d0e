import type { Command } from "commander";
import { configWarnings, environmentOverrides } from "../config.ts";
import { compileRules } from "../domain/filters.ts";
import { Templates } from "../templates.ts";
import { readConfig } from "./admin-context.ts";
import { configOption, type Io } from "./common.ts";

export function registerCheckConfig(program: Command, io: Io): void {
  program
    .command("check-config")
    .description("validate a config file and exit")
    .addOption(configOption())
    .action((opts: { config?: string }) => {
      const { path, config } = readConfig(opts.config);
      compileRules(config);
      // templates.dir and languages: a template that would stop start-up is reported here too.
      new Templates(config);
      io.out(`config ok: ${path}`);
      // Where a value came from, never the value: these are often secrets.
      for (const { variable, path: key } of environmentOverrides().overrides) {
        io.out(`${key.join(".")}: from ${variable}`);
      }
      for (const warning of configWarnings(config)) io.err(`warning: ${warning}`);
    });
}
