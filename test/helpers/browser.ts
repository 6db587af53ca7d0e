import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from "playwright-core";
import { createLogger } from "../../src/log.ts";
import { startService, type RunningService } from "../../src/main.ts";
import { LogCapture } from "./harness.ts";
import { createConfigDir, freePort, type ConfigDir } from "./service.ts";

/** Debian's chromium; the browser is never downloaded. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export const BROWSER_SKIP = "set GATEHOUSE_TEST_BROWSER=1 to run the browser tests";

export function browserTestsEnabled(): boolean {
  return process.env["GATEHOUSE_TEST_BROWSER"] === "1";
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout: 20_000 });
}

export interface BrowserService {
  /** Where the service listens, which is also its publicUrl: links in pages and mail lead back to it. */
  url: string;
  cfg: ConfigDir;
  service: RunningService;
  mailDir: string;
  logs: LogCapture;
  close(): Promise<void>;
}

/**
 * The real service on 127.0.0.1 with publicUrl set to its own address, `overrides` for the rest of
 * its config. The port is picked first (listen on 0, close, reuse the number) because publicUrl
 * must name it before start-up.
 */
export async function startBrowserService(overrides: Parameters<typeof createConfigDir>[0] = {}): Promise<BrowserService> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const cfg = createConfigDir({ ...overrides, listen: { host: "127.0.0.1", port }, publicUrl: url });
  const logs = new LogCapture();
  let service: RunningService;
  try {
    service = await startService({ configPath: cfg.configPath, log: createLogger("warn", logs), watchConfig: false, outboxPollMs: 100 });
  } catch (err) {
    cfg.remove();
    throw err;
  }
  return {
    url,
    cfg,
    service,
    mailDir: join(cfg.dir, "mail"),
    logs,
    async close() {
      try {
        await service.close();
      } finally {
        cfg.remove();
      }
    },
  };
}

/**
 * Opens a fresh browser context (its own cookies; `options` such as `locale`, `viewport` or
 * `javaScriptEnabled`) and a page that records CSP violations and uncaught page errors.
 */
export async function openPage(
  browser: Browser,
  options: BrowserContextOptions = {},
  timeoutMs = 15_000,
): Promise<{ context: BrowserContext; page: Page; cspViolations: string[]; failures: string[] }> {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  const cspViolations: string[] = [];
  const failures: string[] = [];
  page.on("console", (msg) => {
    if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
  });
  page.on("pageerror", (err) => failures.push(String(err)));
  return { context, page, cspViolations, failures };
}
