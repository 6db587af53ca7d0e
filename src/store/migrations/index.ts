import { adopt } from "./000-adopt.ts";
import { core } from "./001-core.ts";
import { keysInvitesSessions } from "./002-keys-invites-sessions.ts";
import { outboxEventOrder } from "./003-outbox-event-order.ts";
import { usersAutoincrement } from "./004-users-autoincrement.ts";
import { usersSkeleton } from "./005-users-skeleton.ts";
import { fillSkeletons } from "./006-fill-skeletons.ts";
import { provision } from "./007-provision.ts";
import { registrationLanguage } from "./008-registration-language.ts";
import { approval } from "./009-approval.ts";
import { resendCount } from "./010-resend-count.ts";
import { inviteLineage } from "./011-invite-lineage.ts";
import type { Migration } from "./types.ts";

/** The schema's history for both dialects, in order; a new change is one new file appended here. */
export const MIGRATIONS: readonly Migration[] = [adopt, core, keysInvitesSessions, outboxEventOrder, usersAutoincrement, usersSkeleton, fillSkeletons, provision, registrationLanguage, approval, resendCount, inviteLineage];
