import type { Command } from "commander";
import { compileRules, explainFilters } from "../domain/filters.ts";
import { readConfig } from "./admin-context.ts";
import { configOption, type Io } from "./common.ts";

export function registerFilters(program: Command, io: Io): void {
  program
    .command("filters")
    .description("the IP lists and mail filters")
    .command("test")
    .description("tell which rule, if any, would refuse a registration from IP with ADDRESS")
    .requiredOption("--ip <ip>", "end-user IP address")
    .requiredOption("--mail <address>", "mail address")
    .addOption(configOption())
    .action((opts: { ip: string; mail: string; config?: string }) => {
      const { config } = readConfig(io, opts.config);
      const verdict = explainFilters(compileRules(config), opts.ip, opts.mail);
      for (const note of verdict.notes) io.out(`note: ${note}`);
      if (verdict.allowed) io.out("allowed: no list or filter refuses this registration");
      else for (const reason of verdict.reasons) io.out(`refused: ${reason}`);
    });
}
