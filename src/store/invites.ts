import { affected, uniqueViolation, type Db } from "./db.ts";
import { insertOutbox } from "./outbox.ts";
import { voidExpiredPending } from "./pending.ts";
import { ACCOUNT_COLUMNS, toAccount, toInvite } from "./rows.ts";
import type { AcceptInviteResult, Store } from "./store.ts";

/** Thrown inside acceptInvite's transaction to roll it back, so the invite keeps its use. */
class NameTaken extends Error {}

export function invitesStore(
  db: Db,
): Pick<Store, "insertInvite" | "findInviteByTokenHash" | "findInviteByHandle" | "listInvites" | "revokeInvite" | "acceptInvite"> {
  const { q } = db;
  return {
    async insertInvite(invite) {
      const row = await q
        .insertInto("invites")
        .values({
          handle: invite.handle,
          token_hash: invite.tokenHash,
          issuer_kind: invite.issuerKind,
          issuer_id: invite.issuerId,
          issuer_name: invite.issuerName,
          username: invite.username,
          uses_total: invite.uses,
          uses_left: invite.uses,
          created_at: invite.createdAt,
          expires_at: invite.expiresAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toInvite(row);
    },

    async findInviteByTokenHash(tokenHash) {
      const row = await q.selectFrom("invites").selectAll().where("token_hash", "=", tokenHash).executeTakeFirst();
      return row ? toInvite(row) : null;
    },

    async findInviteByHandle(handle) {
      const row = await q.selectFrom("invites").selectAll().where("handle", "=", handle).executeTakeFirst();
      return row ? toInvite(row) : null;
    },

    async listInvites() {
      const rows = await q.selectFrom("invites").selectAll().orderBy("created_at").orderBy("id").execute();
      return rows.map(toInvite);
    },

    async revokeInvite(id, now) {
      const result = await q
        .updateTable("invites")
        .set({ revoked_at: now })
        .where("id", "=", id)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      return affected(result) > 0;
    },

    async acceptInvite(tokenHash, now, account, events) {
      try {
        return await db.write(async (tx): Promise<AcceptInviteResult> => {
          // On PostgreSQL the row lock taken here makes concurrent accepts of one invite queue; each
          // re-checks uses_left > 0 against the committed row, so a one-use invite has exactly one winner.
          const invite = await tx
            .updateTable("invites")
            .set((eb) => ({ uses_left: eb("uses_left", "-", 1) }))
            .where("token_hash", "=", tokenHash)
            .where("uses_left", ">", 0)
            .where("revoked_at", "is", null)
            .where("expires_at", ">", now)
            .returning(["id", "issuer_name"])
            .executeTakeFirst();
          if (!invite) return { ok: false, reason: "gone" };
          // A pending registration that has run out no longer holds its name.
          await voidExpiredPending(tx, now, { username: account.username });
          let row;
          try {
            row = await tx
              .insertInto("users")
              .values({
                username: account.username,
                password_hash: account.passwordHash,
                state: "active",
                created_at: now,
                verified_at: now,
                invited_by: invite.issuer_name,
                invite_id: invite.id,
              })
              .returning(ACCOUNT_COLUMNS)
              .executeTakeFirstOrThrow();
          } catch (err) {
            if (uniqueViolation(err) === "username") throw new NameTaken();
            throw err;
          }
          const created = toAccount(row);
          await insertOutbox(tx, events(created), created.id);
          return { ok: true, account: created };
        });
      } catch (err) {
        if (err instanceof NameTaken) return { ok: false, reason: "username-taken" };
        throw err;
      }
    },
  };
}
