import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";
import type { AccountSummary, InviteRecord, NewOutboxItem, Store } from "../store/store.ts";
import { checkPassword, nameHeldError, prepareRequestedName, refuseHeldName, refuseReservedName } from "./accounts.ts";
import type { Rules } from "./filters.ts";
import { eventItem } from "./outbox-items.ts";
import { hashPassword } from "./passwords.ts";
import type { Clock, EventLog, OutboxNotifier, PayloadSealer, RandomSource, TargetDirectory } from "./ports.ts";
import { awaitProvisioning, createJobs, refuseNameTakenDownstream, takenDownstreamError, type ProvisionResult } from "./provisioning.ts";
import { createHandle, createToken, hashToken } from "./secrets.ts";
import { usernameSkeleton } from "./username.ts";
import type { WriteHealth } from "./write-health.ts";

export type Issuer =
  | { kind: "user"; id: number; name: string }
  | { kind: "key"; id: string; name: string }
  | { kind: "admin" };

export interface InviteOptions {
  uses?: number;
  ttlSeconds?: number;
  username?: string;
}

export interface CreatedInvite {
  /** The secret part of the invite link; stored only as a hash. */
  token: string;
  url: string;
  invite: InviteRecord;
}

export interface InviteDeps {
  config: Config;
  rules: Rules;
  store: Store;
  clock: Clock;
  random: RandomSource;
}

export const MAX_INVITE_USES = 1000;
export const MIN_INVITE_TTL_SECONDS = 60;
export const MAX_INVITE_TTL_SECONDS = 366 * 24 * 3600;

export function inviteUrl(config: Pick<Config, "publicUrl">, token: string): string {
  return `${config.publicUrl}/invite/${token}`;
}

/** The issuer as the invitation API shows it: pilcrow's `{id, name}`. */
export function describeIssuer(invite: Pick<InviteRecord, "issuerId" | "issuerName">): { id: string; name: string } {
  return { id: invite.issuerId, name: invite.issuerName };
}

export async function createInvite(deps: InviteDeps, issuer: Issuer, options: InviteOptions = {}): Promise<CreatedInvite> {
  const uses = options.uses ?? 1;
  if (!Number.isInteger(uses) || uses < 1 || uses > MAX_INVITE_USES) {
    throw new AppError("MALFORMED_REQUEST", `uses must be a whole number from 1 to ${MAX_INVITE_USES}`);
  }
  const ttl = options.ttlSeconds ?? deps.config.invites.ttlSeconds;
  if (!Number.isInteger(ttl) || ttl < MIN_INVITE_TTL_SECONDS || ttl > MAX_INVITE_TTL_SECONDS) {
    throw new AppError("MALFORMED_REQUEST", `ttl must be a whole number of seconds from ${MIN_INVITE_TTL_SECONDS} to ${MAX_INVITE_TTL_SECONDS}`);
  }
  let username: string | null = null;
  if (options.username !== undefined && options.username !== "") {
    username = prepareRequestedName(options.username);
    refuseReservedName(deps, username);
  }
  const now = deps.clock.now();
  const token = createToken(deps.random, 24);
  const invite = await deps.store.insertInvite({
    handle: createHandle(deps.random),
    tokenHash: hashToken(token),
    issuerKind: issuer.kind,
    issuerId: issuer.kind === "admin" ? "admin" : issuer.kind === "user" ? `u${issuer.id}` : issuer.id,
    issuerName: issuer.kind === "admin" ? "the administrators" : issuer.name,
    username,
    uses,
    createdAt: now,
    expiresAt: now + ttl * 1000,
  });
  return { token, url: inviteUrl(deps.config, token), invite };
}

/** Why an invite can no longer be used, or null while it can. */
export function inviteState(invite: InviteRecord, now: number): "revoked" | "used" | "expired" | null {
  if (invite.revokedAt !== null) return "revoked";
  if (invite.usesLeft <= 0) return "used";
  if (invite.expiresAt <= now) return "expired";
  return null;
}

const GONE_MESSAGES = {
  revoked: "this invitation has been withdrawn",
  used: "this invitation has already been used",
  expired: "this invitation has expired",
} as const;

/** A usable invite for a token: 404 when there never was one, 410 when it is used up, expired or revoked. */
export async function findLiveInvite(deps: Pick<InviteDeps, "store" | "clock">, token: string): Promise<InviteRecord> {
  const invite = token.length > 0 && token.length <= 256 ? await deps.store.findInviteByTokenHash(hashToken(token)) : null;
  if (!invite) throw new AppError("INVITE_NOT_FOUND", "this invitation does not exist");
  const state = inviteState(invite, deps.clock.now());
  if (state) throw new AppError("INVITE_GONE", GONE_MESSAGES[state], { detail: state });
  return invite;
}

export interface AcceptDeps extends InviteDeps {
  sealer: PayloadSealer;
  log: EventLog;
  notifyOutbox: OutboxNotifier;
  writeHealth: WriteHealth;
  targets: TargetDirectory;
}

/**
 * Creates an account with an invite. Cheap checks first; the password is hashed only for a
 * request that can succeed, and the use of the invite and the account are one transaction.
 */
export async function acceptInvite(
  deps: AcceptDeps,
  token: string,
  name: string,
  password: string,
): Promise<{ account: AccountSummary; invite: InviteRecord; provisioning: Exclude<ProvisionResult, "taken"> }> {
  const invite = await findLiveInvite(deps, token);
  const username = prepareRequestedName(name);
  const skeleton = usernameSkeleton(username);
  refuseReservedName(deps, username, skeleton);
  if (invite.username !== null && invite.username !== username) {
    throw new AppError("INVITE_NAME_MISMATCH", `this invitation is for the username ${invite.username}`, { values: { username: invite.username } });
  }
  checkPassword(deps, password);
  const now = deps.clock.now();
  // A pending registration's name is taken too, here: an invite has no "pending" answer.
  await refuseHeldName(deps, username, skeleton, now, "USERNAME_TAKEN");
  await refuseNameTakenDownstream(deps, username);
  await deps.writeHealth.checkWritable(deps.store, now);
  const passwordHash = await hashPassword(password);
  const webhook = deps.config.events?.webhook;
  const result = await deps.store.acceptInvite(hashToken(token), deps.clock.now(), { username, skeleton, passwordHash }, (account): NewOutboxItem[] => [
    // The jobs come first: the account's events are held until every job is done (DESIGN §9).
    ...createJobs(deps, account.username, { passwordHash, password }, now),
    ...(webhook
      ? [
          eventItem(deps, {
            type: "user-registered",
            occurredAt: new Date(now).toISOString(),
            data: { id: account.id, username: account.username, via: "invite", invitedBy: invite.issuerName },
          }, now),
          eventItem(deps, {
            type: "invite-accepted",
            occurredAt: new Date(now).toISOString(),
            data: { invite: invite.handle, issuer: describeIssuer(invite), username: account.username },
          }, now),
        ]
      : []),
  ]);
  if (!result.ok) {
    if (result.reason === "username-taken") throw nameHeldError({ holder: "account", lookalike: false }, "USERNAME_TAKEN");
    throw new AppError("INVITE_GONE", GONE_MESSAGES.used, { detail: "used" });
  }
  deps.log.info({ event: "user-registered", username: result.account.username, userId: result.account.id, via: "invite", invite: invite.handle }, "user-registered");
  if (webhook) deps.notifyOutbox();
  const provisioning = await awaitProvisioning(deps, result.account.id, deps.notifyOutbox);
  if (provisioning === "taken") throw takenDownstreamError();
  return { account: result.account, invite, provisioning };
}

export function listInvites(deps: Pick<InviteDeps, "store">): Promise<InviteRecord[]> {
  return deps.store.listInvites();
}

/** Revokes by handle, or by the token itself when an admin pastes the link. */
export async function revokeInvite(deps: Pick<InviteDeps, "store" | "clock">, ref: string): Promise<InviteRecord | null> {
  const trimmed = ref.trim().replace(/^.*\/invite\/?\??/, "");
  const invite = (await deps.store.findInviteByHandle(trimmed)) ?? (await deps.store.findInviteByTokenHash(hashToken(trimmed)));
  if (!invite) return null;
  await deps.store.revokeInvite(invite.id, deps.clock.now());
  return invite;
}
