import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptsConnections, launch, missingPrograms, removeDir, runChecked, ServerProcess, type AccountServer } from "./server-process.ts";
import { freePort } from "./service.ts";

const PROSODY = "/usr/bin/prosody";
const PROSODYCTL = "/usr/bin/prosodyctl";
const OPENSSL = "/usr/bin/openssl";

/** Why Prosody tests cannot run here, or undefined. openssl comes with prosody (through ssl-cert). */
export const prosodyMissing = missingPrograms([PROSODY, PROSODYCTL, OPENSSL], "prosody");

export interface ProsodyServer extends AccountServer {
  domain: string;
  c2sPort: number;
  /** In `admins`, so mod_admin_adhoc's commands are open to it. */
  admin: { jid: string; password: string };
  /** The self-signed certificate Prosody offers with STARTTLS, for clients to trust. */
  tls: { ca: string };
}

/**
 * Prosody 0.12 from Debian's package with a private config: loopback c2s only, no s2s or HTTP,
 * STARTTLS with a certificate made here (c2s requires encryption, as in a real deployment),
 * `run_as_root = true` because tests may run as root.
 */
export async function startProsody(): Promise<ProsodyServer> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-prosody-"));
  const domain = "prosody.gatehouse.test";
  const c2sPort = await freePort();
  mkdirSync(join(dir, "data"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const configPath = join(dir, "prosody.cfg.lua");
  const admin = { jid: `admin@${domain}`, password: "admin password 'with' <xml> & spaces" };
  try {
    runChecked(OPENSSL, [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "2",
      "-subj", `/CN=${domain}`, "-addext", `subjectAltName=DNS:${domain}`,
    ]);
    writeFileSync(configPath, prosodyConfig({ dir, domain, c2sPort, admin: admin.jid, cert, key }));
    // The admin is made before the server starts; prosodyctl writes the account files directly. (Never
    // for provisioning: `prosodyctl register` overwrites an existing account without a word.)
    runChecked(PROSODYCTL, ["--config", configPath, "register", "admin", domain, admin.password]);
  } catch (err) {
    removeDir(dir);
    throw err;
  }
  const server = new ServerProcess("prosody", PROSODY, ["--config", configPath, "-F"], { logFiles: [join(dir, "prosody.log")] });
  const extra = { domain, c2sPort, admin, tls: { ca: readFileSync(cert, "utf8") } };
  return launch(server, dir, () => acceptsConnections(c2sPort), extra);
}

function prosodyConfig(p: { dir: string; domain: string; c2sPort: number; admin: string; cert: string; key: string }): string {
  return `-- A private Prosody for one test: loopback only, data in the test's directory.
run_as_root = true
pidfile = "${join(p.dir, "prosody.pid")}"
data_path = "${join(p.dir, "data")}"
plugin_paths = {}
log = { { levels = { min = "info" }, to = "file", filename = "${join(p.dir, "prosody.log")}" } }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${p.c2sPort} }
c2s_direct_tls_ports = {}
legacy_ssl_ports = {}
s2s_ports = {}
http_ports = {}
https_ports = {}
admins = { "${p.admin}" }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "admin_adhoc" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
VirtualHost "${p.domain}"
  ssl = { certificate = "${p.cert}", key = "${p.key}" }
`;
}
