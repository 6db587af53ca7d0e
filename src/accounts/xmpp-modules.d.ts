// The few parts of xmpp.js (@xmpp/*, 0.14) that src/accounts/xmpp-session.ts composes; the packages ship no types.

declare module "@xmpp/xml" {
  export interface Element {
    name: string;
    attrs: Record<string, string | undefined>;
    children: (Element | string)[];
    is(name: string, xmlns?: string): boolean;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    text(): string;
    toString(): string;
  }
  type Child = Element | string | undefined | null | false;
  export default function xml(name: string, attrs?: Record<string, string | undefined>, ...children: (Child | Child[])[]): Element;
}

declare module "@xmpp/client-core" {
  import type { EventEmitter } from "node:events";
  import type { Element } from "@xmpp/xml";
  export { default as xml } from "@xmpp/xml";
  export function jid(local: string, domain: string, resource?: string): { toString(): string };
  export class Client extends EventEmitter {
    constructor(options: { service: string; domain: string; timeout?: number });
    jid: { toString(): string } | null;
    status: string;
    socket: unknown;
    options: { service: string; domain: string };
    transports: unknown[];
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    restart(): Promise<unknown>;
    send(element: Element): Promise<void>;
    sendReceive(element: Element, timeout?: number): Promise<Element>;
    isSecure(): boolean;
    _attachSocket(socket: unknown): void;
  }
}

declare module "@xmpp/tcp" {
  export default function tcp(deps: { entity: unknown }): void;
}

declare module "@xmpp/middleware" {
  export interface Middleware {
    use(fn: (ctx: unknown, next: () => Promise<unknown>) => unknown): unknown;
  }
  export default function middleware(deps: { entity: unknown }): Middleware;
}

declare module "@xmpp/stream-features" {
  import type { Middleware } from "@xmpp/middleware";
  import type { Client } from "@xmpp/client-core";
  import type { Element } from "@xmpp/xml";
  export interface StreamFeatures {
    use(
      name: string,
      xmlns: string,
      handler: (ctx: { entity: Client }, next: () => Promise<unknown>, feature: Element) => Promise<unknown>,
    ): unknown;
  }
  export default function streamFeatures(deps: { middleware: Middleware }): StreamFeatures;
}

declare module "@xmpp/iq/caller.js" {
  import type { Middleware } from "@xmpp/middleware";
  import type { Element } from "@xmpp/xml";
  export interface IqCaller {
    request(stanza: Element, timeout?: number): Promise<Element>;
  }
  export default function iqCaller(deps: { middleware: Middleware; entity: unknown }): IqCaller;
}

declare module "@xmpp/sasl" {
  import type { StreamFeatures } from "@xmpp/stream-features";
  export default function sasl(
    deps: { streamFeatures: StreamFeatures; saslFactory: unknown },
    onAuthenticate: (
      authenticate: (credentials: { username: string; password: string }, mechanism: string) => Promise<void>,
      mechanisms: string[],
    ) => Promise<void>,
  ): void;
}

declare module "@xmpp/sasl-scram-sha-1" {
  export default function scramSha1(saslFactory: unknown): void;
}

declare module "@xmpp/sasl-plain" {
  export default function plain(saslFactory: unknown): void;
}

declare module "@xmpp/resource-binding" {
  import type { StreamFeatures } from "@xmpp/stream-features";
  import type { IqCaller } from "@xmpp/iq/caller.js";
  export default function resourceBinding(deps: { iqCaller: IqCaller; streamFeatures: StreamFeatures }, resource?: string): void;
}

declare module "@xmpp/starttls/starttls.js" {
  import type { ConnectionOptions } from "node:tls";
  export function canUpgrade(socket: unknown): boolean;
  export function upgrade(socket: unknown, options: ConnectionOptions): Promise<unknown>;
}

declare module "@xmpp/error" {
  export default class XMPPError extends Error {
    condition: string;
    text: string;
    element?: import("@xmpp/xml").Element;
  }
}

declare module "saslmechanisms" {
  export default class SASLFactory {}
}

declare module "@xmpp/iq/callee.js" {
  import type { Middleware } from "@xmpp/middleware";
  export interface IqCallee {
    get(xmlns: string, name: string, handler: () => unknown): void;
  }
  export default function iqCallee(deps: { middleware: Middleware; entity: unknown }): IqCallee;
}
