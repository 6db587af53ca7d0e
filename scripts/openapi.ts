// The OpenAPI description's file and checks (src/http/openapi.ts is the source):
//   npm run openapi                              write docs/openapi.json (for config.example.json)
//   npm run openapi -- --check                   exit 1 when docs/openapi.json is not what the source makes
//   npm run openapi -- --check-recording FILE    validate the responses a test run recorded with
//                                                GATEHOUSE_OPENAPI_RECORD=FILE against the description
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config.ts";
import { buildOpenApi, openApiText, type OpenApiConfig } from "../src/http/openapi.ts";
import { OpenApiChecker, type Exchange } from "../test/helpers/openapi.ts";

const EXAMPLE = fileURLToPath(new URL("../config.example.json", import.meta.url));
export const OPENAPI_FILE = fileURLToPath(new URL("../docs/openapi.json", import.meta.url));

/** The description for the example config, exactly as the service serves it. */
export function exampleOpenApiText(): string {
  // The example file alone: GATEHOUSE__… variables of whoever runs this must not leak into the repo file.
  return openApiText(loadConfig(EXAMPLE, {}));
}

/** Checks every recorded exchange against the description of the config it was answered on. */
export function checkRecording(lines: string[]): { exchanges: number; problems: string[]; met: Set<string>; documented: Set<string> } {
  const checkers = new Map<string, OpenApiChecker>();
  const problems = new Set<string>();
  const met = new Set<string>();
  const documented = new Set<string>();
  let exchanges = 0;
  for (const line of lines) {
    if (!line.trim()) continue;
    const exchange = JSON.parse(line) as Exchange & { config: OpenApiConfig };
    const key = JSON.stringify(exchange.config);
    let checker = checkers.get(key);
    if (!checker) {
      checker = new OpenApiChecker(JSON.parse(JSON.stringify(buildOpenApi(exchange.config))) as ConstructorParameters<typeof OpenApiChecker>[0]);
      checkers.set(key, checker);
      for (const response of checker.documentedResponses()) documented.add(response);
    }
    exchanges += 1;
    for (const problem of checker.check(exchange)) problems.add(problem);
    for (const seen of checker.seen) met.add(seen);
  }
  return { exchanges, problems: [...problems], met, documented };
}

function main(args: string[]): number {
  const recording = args.indexOf("--check-recording");
  if (recording >= 0) {
    const file = args[recording + 1];
    if (!file) {
      process.stderr.write("usage: npm run openapi -- --check-recording FILE\n");
      return 2;
    }
    const { exchanges, problems, met, documented } = checkRecording(readFileSync(file, "utf8").split("\n"));
    for (const problem of problems) process.stdout.write(`${problem}\n`);
    const unmet = [...documented].filter((r) => !met.has(r)).sort();
    process.stdout.write(`${exchanges} responses checked, ${problems.length} not as described; ${documented.size - unmet.length} of ${documented.size} documented responses met\n`);
    if (args.includes("--unmet")) for (const r of unmet) process.stdout.write(`unmet: ${r}\n`);
    return problems.length === 0 ? 0 : 1;
  }
  const text = exampleOpenApiText();
  if (args.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OPENAPI_FILE, "utf8");
    } catch {
      // A missing file is as stale as a different one.
    }
    if (current === text) return 0;
    process.stderr.write("docs/openapi.json is not what src/http/openapi.ts makes: run `npm run openapi`\n");
    return 1;
  }
  writeFileSync(OPENAPI_FILE, text);
  process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
