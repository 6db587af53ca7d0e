import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "ldapts";
import { acceptsConnections, launch, missingPrograms, ServerProcess, type AccountServer } from "./server-process.ts";
import { freePort } from "./service.ts";

const SLAPD = "/usr/sbin/slapd";
const ARGON2_MODULE = "/usr/lib/ldap/argon2.so";

/** Why slapd tests cannot run here, or undefined. */
export const slapdMissing = missingPrograms([SLAPD, "/usr/bin/ldapwhoami", ARGON2_MODULE], "slapd ldap-utils");

export interface SlapdServer extends AccountServer {
  url: string;
  port: number;
  baseDN: string;
  /** The rootdn: may add and delete under baseDN. */
  admin: { dn: string; password: string };
}

/**
 * OpenLDAP slapd 2.5 from Debian's package, from a slapd.conf of its own: the argon2 password
 * module, one mdb database in the test's directory, ldap:// on a loopback port, a base entry.
 */
export async function startSlapd(): Promise<SlapdServer> {
  const dir = mkdtempSync(join(tmpdir(), "gatehouse-slapd-"));
  const port = await freePort();
  const baseDN = "ou=people,dc=gatehouse,dc=test";
  const admin = { dn: "cn=admin,dc=gatehouse,dc=test", password: "admin password 'with' <xml> & spaces" };
  mkdirSync(join(dir, "db"));
  const configPath = join(dir, "slapd.conf");
  writeFileSync(configPath, slapdConfig({ dir, admin }));
  const url = `ldap://127.0.0.1:${port}`;
  // -d 0: stay in the foreground (no fork), so the test owns the process; -h: only this port.
  const server = new ServerProcess("slapd", SLAPD, ["-f", configPath, "-h", `${url}/`, "-d", "0"]);
  return launch(server, dir, () => acceptsConnections(port), { url, port, baseDN, admin }, async () => {
    const client = new Client({ url });
    try {
      await client.bind(admin.dn, admin.password);
      await client.add("dc=gatehouse,dc=test", { objectClass: ["dcObject", "organization"], dc: "gatehouse", o: "gatehouse" });
      await client.add(baseDN, { objectClass: "organizationalUnit", ou: "people" });
    } finally {
      await client.unbind();
    }
  });
}

function slapdConfig(p: { dir: string; admin: { dn: string; password: string } }): string {
  return `# A private slapd for one test.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
# Verifies {ARGON2} userPassword values: gatehouse stores its own Argon2id hash, never the password.
moduleload argon2
pidfile ${join(p.dir, "slapd.pid")}
argsfile ${join(p.dir, "slapd.args")}
database mdb
maxsize 104857600
suffix "dc=gatehouse,dc=test"
rootdn "${p.admin.dn}"
rootpw "${p.admin.password.replace(/(["\\])/g, "\\$1")}"
directory ${join(p.dir, "db")}
index uid eq
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`;
}

/** `ldapwhoami -D uid=NAME,… -w PASSWORD`: a simple bind, as any LDAP login does, checked by slapd's argon2 module. */
export function bindsAs(server: SlapdServer, username: string, password: string): boolean {
  const result = spawnSync("ldapwhoami", ["-x", "-H", server.url, "-D", `uid=${username},${server.baseDN}`, "-w", password], {
    encoding: "utf8",
    timeout: 10_000,
  });
  if (result.status !== 0 && !/Invalid credentials \(49\)/.test(result.stderr)) {
    throw new Error(`ldapwhoami failed oddly (${result.status}): ${result.stderr}`);
  }
  return result.status === 0;
}
