import type { NewOutboxItem } from "../store/store.ts";
import type { PayloadSealer } from "./ports.ts";

/**
 * What each mail template is given; templates.ts renders them (adding `site` and `lang`), the
 * domain fills them in. A new kind is a key here plus `templates/mail/<kind>.{subject.txt,txt,html}`
 * and its `mail.<kind>.*` catalogue strings.
 */
export interface MailModels {
  /** expiresAt: epoch ms (mail queued by older versions carries a date string; both render). */
  verify: { username: string; link: string; expiresAt: number | string };
}

export type MailName = keyof MailModels;

/** What a queued mail carries: the template, the address and the model, sealed at rest. */
export interface MailPayload<N extends MailName = MailName> {
  template: N;
  to: string;
  model: MailModels[N];
  /** The language to write it in (one of `languages`); absent in mail queued by older versions: the default. */
  lang?: string;
}

export interface EventPayload {
  type: "user-registered" | "invite-accepted";
  occurredAt: string;
  data: Record<string, unknown>;
}

export interface OutboxItemDeps {
  sealer: PayloadSealer;
}

/**
 * An outbox item for a mail, to be stored in the same transaction as the row it belongs to; the
 * outbox sender (mail/outbox.ts) opens and sends it.
 */
export function mailItem<N extends MailName>(deps: OutboxItemDeps, payload: MailPayload<N>, now: number): NewOutboxItem {
  return { kind: "mail", payload: deps.sealer.seal(JSON.stringify(payload)), createdAt: now };
}

/** An outbox item for an event, posted to the configured webhook by the outbox sender. */
export function eventItem(deps: OutboxItemDeps, event: EventPayload, now: number): NewOutboxItem {
  return { kind: "event", payload: deps.sealer.seal(JSON.stringify(event)), createdAt: now };
}
