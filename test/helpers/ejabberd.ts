import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { acceptsConnections, launch, missingPrograms, ServerProcess, type AccountServer } from "./server-process.ts";
import { freePort } from "./service.ts";

const EJABBERDCTL = "/usr/sbin/ejabberdctl";

/** Why ejabberd tests cannot run here, or undefined. */
export const ejabberdMissing = missingPrograms([EJABBERDCTL, "/usr/bin/erl"], "ejabberd");

export interface EjabberdServer extends AccountServer {
  domain: string;
  /** mod_http_api, open to loopback without credentials through an api_permissions rule. */
  apiUrl: string;
  /** The same API behind Basic auth of the admin account (a second listener, no IP rule). */
  authApiUrl: string;
  c2sPort: number;
  /** An admin (acl admin: mod_configure's XEP-0133 commands) made through the API at start. */
  admin: { jid: string; password: string };
}

/**
 * ejabberd 23.01 from Debian's package, run as the current user from a private config: its own
 * ejabberdctl.cfg (EXEC_CMD=as_current_user, so root does not switch to the ejabberd user), its own
 * node name, and ERL_DIST_PORT, which makes the node listen on a fixed port without epmd — another
 * Erlang node's epmd (RabbitMQ's) may already run on the machine. No TLS: loopback only.
 */
export async function startEjabberd(): Promise<EjabberdServer> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-ejabberd-"));
  const domain = "ejabberd.gatehouse.test";
  const [c2sPort, apiPort, authApiPort, distPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  for (const sub of ["logs", "spool", "home"]) mkdirSync(join(dir, sub));
  const admin = { jid: `admin@${domain}`, password: "admin password 'with' <xml> & spaces" };
  writeFileSync(
    join(dir, "ejabberdctl.cfg"),
    [
      "EXEC_CMD=as_current_user",
      `ERLANG_NODE=gatehouse${distPort}@localhost`,
      `ERL_DIST_PORT=${distPort}`,
      "INET_DIST_INTERFACE=127.0.0.1",
      `EJABBERD_PID_PATH=${join(dir, "ejabberd.pid")}`,
      `CONTRIB_MODULES_PATH=${join(dir, "contrib")}`,
      `CONTRIB_MODULES_CONF_DIR=${join(dir, "contrib-conf")}`,
      "EJABBERD_BYPASS_WARNINGS=true",
      'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"',
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "ejabberd.yml"), ejabberdConfig({ domain, c2sPort, apiPort, authApiPort }));
  const server = new ServerProcess(
    "ejabberd",
    EJABBERDCTL,
    [
      "--config-dir", dir,
      "--config", join(dir, "ejabberd.yml"),
      "--ctl-config", join(dir, "ejabberdctl.cfg"),
      "--logs", join(dir, "logs"),
      "--spool", join(dir, "spool"),
      "foreground",
    ],
    // HOME holds the node's .erlang.cookie: the test's own, not root's.
    { env: { HOME: join(dir, "home") }, logFiles: [join(dir, "logs", "error.log")] },
  );
  const apiUrl = `http://127.0.0.1:${apiPort}/api`;
  // Ready when the client port accepts and the API answers (Mnesia is up).
  const ready = async () => {
    if (!(await acceptsConnections(c2sPort))) return false;
    const res = await fetch(`${apiUrl}/check_account`, {
      method: "POST",
      body: JSON.stringify({ user: "admin", host: domain }),
    }).catch(() => undefined);
    return res?.status === 200;
  };
  const extra = { domain, apiUrl, authApiUrl: `http://127.0.0.1:${authApiPort}/api`, c2sPort, admin };
  return launch(server, dir, ready, extra, async () => {
    const res = await fetch(`${apiUrl}/register`, {
      method: "POST",
      body: JSON.stringify({ user: "admin", host: domain, password: admin.password }),
    });
    if (res.status !== 200) throw new Error(`could not make the ejabberd admin: ${res.status} ${await res.text()}`);
  });
}

function ejabberdConfig(p: { domain: string; c2sPort: number; apiPort: number; authApiPort: number }): string {
  return `# A private ejabberd for one test: loopback only, no TLS, Mnesia in the test's directory.
hosts:
  - ${p.domain}
loglevel: info
certfiles: []
listen:
  -
    port: ${p.c2sPort}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
  -
    port: ${p.apiPort}
    ip: "127.0.0.1"
    module: ejabberd_http
    tag: open
    request_handlers:
      /api: mod_http_api
  -
    port: ${p.authApiPort}
    ip: "127.0.0.1"
    module: ejabberd_http
    tag: authapi
    request_handlers:
      /api: mod_http_api
s2s_access: none
auth_method: internal
acl:
  admin:
    user: admin@${p.domain}
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  configure:
    allow: admin
  register:
    deny: all
api_permissions:
  # Loopback may provision accounts without credentials: gatehouse's "auth: none".
  "gatehouse on loopback":
    from:
      - tag: open
    who:
      ip: 127.0.0.1/8
    what:
      - register
      - check_account
      - check_password
      - unregister
  # The second listener (tag authapi) is for callers that log in as an admin: Basic or Bearer.
  "admins":
    from:
      - tag: authapi
    who:
      access:
        allow:
          - acl: admin
    what:
      - register
      - check_account
      - check_password
      - unregister
modules:
  mod_adhoc: {}
  mod_admin_extra: {}
  mod_configure: {}
  mod_disco: {}
  mod_http_api: {}
  mod_ping: {}
`;
}
