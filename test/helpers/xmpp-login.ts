import { openXmppSession, type XmppTlsOptions } from "../../src/accounts/xmpp-session.ts";

/** Whether a person could log in over XMPP (SASL, as their client would) with this password. */
export async function xmppLogsIn(
  server: { c2sPort: number; domain: string; tls?: XmppTlsOptions },
  username: string,
  password: string,
): Promise<boolean> {
  try {
    const session = await openXmppSession({
      service: `xmpp://127.0.0.1:${server.c2sPort}`,
      domain: server.domain,
      username,
      password,
      timeoutMs: 5000,
      ...(server.tls ? { tls: server.tls } : {}),
    });
    await session.stop();
    return true;
  } catch (err) {
    if ((err as Error).name === "SASLError") return false;
    throw err;
  }
}
