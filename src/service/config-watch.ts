import { createHash } from "node:crypto";
import { readFileSync, unwatchFile, watch, watchFile, type FSWatcher } from "node:fs";
import { basename, dirname } from "node:path";
import type { Logger } from "pino";
import { configForReload, configWarnings, loadConfig, type Config, type Environment } from "../config.ts";
import { applyConfig, type AppContext } from "../context.ts";

export function logConfigWarnings(log: Logger, config: Config, file: string): void {
  for (const warning of configWarnings(config, file)) log.warn({ warning }, `config warning: ${warning}`);
}

function fingerprint(file: string): string | null {
  try {
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return null;
  }
}

export interface ConfigWatchOptions {
  configPath: string;
  /** Where GATEHOUSE__… overrides come from (default: the process environment). */
  environment?: Environment;
  /** Reload when the file changes (else only when reload() is called, e.g. on SIGHUP). */
  watch: boolean;
}

export interface ConfigWatch {
  /** Re-reads the config file; false when the new file was refused. */
  reload(): boolean;
  close(): void;
}

/** Applies edits of the config file to `ctx`; a refused file keeps the last good config in force. */
export function watchConfig(ctx: AppContext, options: ConfigWatchOptions): ConfigWatch {
  const { configPath } = options;
  const log = ctx.log;
  let loaded = fingerprint(configPath);
  let loadedConfig = ctx.config;
  const reload = (): boolean => {
    const current = fingerprint(configPath);
    let next: Config;
    try {
      next = loadConfig(configPath, options.environment);
    } catch (err) {
      log.error({ file: configPath, reason: (err as Error).message }, "config reload refused; keeping the last good config");
      loaded = current;
      return false;
    }
    const { config: inForce, restart } = configForReload(ctx.config, next, loadedConfig);
    try {
      applyConfig(ctx, inForce);
    } catch (err) {
      log.error({ file: configPath, reason: (err as Error).message }, "config reload refused; keeping the last good config");
      loaded = current;
      return false;
    }
    loaded = current;
    loadedConfig = next;
    if (restart.length > 0) log.warn({ keys: restart }, "config changes that need a restart to take effect");
    log.info({ file: configPath }, "config reloaded");
    logConfigWarnings(log, next, configPath);
    return true;
  };

  // Editors save by writing a new file and renaming it over the old one, which ends a watch on
  // the file itself: watch the directory, and poll the path as a net under platforms without events.
  let debounce: NodeJS.Timeout | null = null;
  const onChange = () => {
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      const current = fingerprint(configPath);
      if (current !== null && current !== loaded) reload();
    }, 150);
  };
  let watcher: FSWatcher | null = null;
  if (options.watch) {
    try {
      watcher = watch(dirname(configPath), (_event, name) => {
        if (name === null || name === basename(configPath)) onChange();
      });
      watcher.on("error", () => {});
    } catch (err) {
      log.warn({ reason: String(err) }, "cannot watch the config directory; polling only");
    }
    watchFile(configPath, { interval: 1000, persistent: false }, onChange);
  }

  return {
    reload,
    close() {
      watcher?.close();
      unwatchFile(configPath, onChange);
      if (debounce) clearTimeout(debounce);
    },
  };
}
