// Writes docs/openapi.json: the description /openapi.json serves for config.example.json.
//   npm run openapi            write it
//   npm run openapi -- --check fail (exit 1) when the file is not what the source makes
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../src/config.ts";
import { openApiJson } from "../src/http/openapi.ts";

const EXAMPLE = fileURLToPath(new URL("../config.example.json", import.meta.url));
export const OPENAPI_FILE = fileURLToPath(new URL("../docs/openapi.json", import.meta.url));

/** The description for the example config, exactly as the service serves it. */
export function exampleOpenApiText(): string {
  // The example file alone: GATEHOUSE__… variables of whoever runs this must not leak into the repo file.
  return openApiJson()(loadConfig(EXAMPLE, {}));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = exampleOpenApiText();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(OPENAPI_FILE, "utf8");
    } catch {
      // A missing file is as stale as a different one.
    }
    if (current !== text) {
      process.stderr.write("docs/openapi.json is not what src/http/openapi.ts makes: run `npm run openapi`\n");
      process.exitCode = 1;
    }
  } else {
    writeFileSync(OPENAPI_FILE, text);
    process.stdout.write(`wrote ${OPENAPI_FILE}\n`);
  }
}
