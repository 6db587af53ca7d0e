import type { ConnectionOptions } from "node:tls";
import { Client, xml } from "@xmpp/client-core";
import iqCallee from "@xmpp/iq/callee.js";
import iqCaller, { type IqCaller } from "@xmpp/iq/caller.js";
import middleware from "@xmpp/middleware";
import resourceBinding from "@xmpp/resource-binding";
import sasl from "@xmpp/sasl";
import saslPlain from "@xmpp/sasl-plain";
import saslScramSha1 from "@xmpp/sasl-scram-sha-1";
import { canUpgrade, upgrade } from "@xmpp/starttls/starttls.js";
import streamFeatures from "@xmpp/stream-features";
import tcp from "@xmpp/tcp";
import SASLFactory from "saslmechanisms";
import { withTimeout } from "./target.ts";

export interface XmppTlsOptions {
  /** PEM of a CA to trust instead of the system's, e.g. a test's self-signed certificate. */
  ca?: string;
  /** false accepts any certificate: for a test server only, never in production. */
  rejectUnauthorized?: boolean;
}

export interface XmppLogin {
  /** xmpp://host:port */
  service: string;
  domain: string;
  username: string;
  password: string;
  tls?: XmppTlsOptions;
  timeoutMs: number;
}

export interface XmppSession {
  readonly jid: string;
  readonly secure: boolean;
  iq: IqCaller;
  /** True until the stream or socket closes. */
  readonly online: boolean;
  stop(): Promise<void>;
}

const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

/**
 * One logged-in client stream, composed from xmpp.js's parts instead of @xmpp/client so that
 * STARTTLS can be given a CA to trust (@xmpp/client upgrades with the system CAs only). STARTTLS is
 * used whenever the server offers it; without TLS only SCRAM-SHA-1 is used, never PLAIN, so the
 * password is never sent in the clear (xmpp.js would do the same, but offers no way to add a CA).
 */
export async function openXmppSession(login: XmppLogin): Promise<XmppSession> {
  const entity = new Client({ service: login.service, domain: login.domain, timeout: login.timeoutMs });
  tcp({ entity });
  const mw = middleware({ entity });
  const features = streamFeatures({ middleware: mw });
  const caller = iqCaller({ middleware: mw, entity });
  // Answers the server's pings (and refuses other requests) so an idle admin stream is not cut.
  iqCallee({ middleware: mw, entity }).get("urn:xmpp:ping", "ping", () => ({}));

  const tlsOptions: ConnectionOptions = { host: login.domain, servername: login.domain };
  if (login.tls?.ca) tlsOptions.ca = login.tls.ca;
  if (login.tls?.rejectUnauthorized === false) tlsOptions.rejectUnauthorized = false;
  features.use("starttls", NS_TLS, async ({ entity: e }, next) => {
    if (!canUpgrade(e.socket)) return next();
    const answer = await e.sendReceive(xml("starttls", { xmlns: NS_TLS }));
    if (!answer.is("proceed", NS_TLS)) throw new Error("the server refused STARTTLS");
    e._attachSocket(await upgrade(e.socket, tlsOptions));
    await e.restart();
  });

  const factory = new SASLFactory();
  saslScramSha1(factory);
  saslPlain(factory);
  sasl({ streamFeatures: features, saslFactory: factory }, async (authenticate, mechanisms) => {
    // Over TLS, PLAIN: xmpp.js computes SCRAM's 4096–10000 PBKDF2 rounds one WebCrypto call at a
    // time (1.5 s against Prosody here), too slow inside a provisioning timeout. In the clear, SCRAM only.
    const mechanism = entity.isSecure() && mechanisms.includes("PLAIN") ? "PLAIN" : mechanisms.find((m) => m !== "PLAIN");
    if (!mechanism) throw new Error(`no SASL mechanism that keeps the password secret (offered: ${mechanisms.join(", ")})`);
    await authenticate({ username: login.username, password: login.password }, mechanism);
  });
  resourceBinding({ iqCaller: caller, streamFeatures: features }, "gatehouse");

  let online = false;
  const errors: Error[] = [];
  entity.on("error", (err: Error) => errors.push(err));
  entity.on("online", () => (online = true));
  for (const state of ["disconnect", "offline", "close"]) entity.on(state, () => (online = false));
  try {
    await withTimeout(entity.start(), login.timeoutMs, `logging in to ${login.service}`);
  } catch (err) {
    await entity.stop().catch(() => {});
    throw errors[0] ?? err;
  }
  return {
    jid: String(entity.jid),
    secure: entity.isSecure(),
    iq: caller,
    get online() {
      return online;
    },
    async stop() {
      online = false;
      await withTimeout(entity.stop(), login.timeoutMs, "closing the stream").catch(() => {});
    },
  };
}
