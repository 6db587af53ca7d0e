import { sql, type Insertable, type Selectable } from "kysely";
import { affected, query, type Db } from "./db.ts";
import { ACCOUNT_COLUMNS, toAccount } from "./rows.ts";
import type { Tables } from "./schema.ts";
import { insertOutbox } from "./outbox.ts";
import type { AccountLineage, AccountSummary, Store } from "./store.ts";

const listAccounts = query((q) => q.selectFrom("users").select(ACCOUNT_COLUMNS).where("state", "=", sql.lit("active")).orderBy("username"));
// Its sessions go with it (ON DELETE CASCADE), and with it the claim on its mail hash.
const deleteAccount = query((q, p: { username: string }) =>
  q.deleteFrom("users").where("username", "=", p.username).where("state", "=", sql.lit("active")),
);
const removeActive = query((q, p: { username: string }) =>
  q
    .deleteFrom("users")
    .where("username", "=", p.username)
    .where("state", "=", sql.lit("active"))
    .returning([...ACCOUNT_COLUMNS, "invite_id"]),
);
const giveUseBack = query((q, p: { id: number }) =>
  q
    .updateTable("invites")
    .set((eb) => ({ uses_left: eb("uses_left", "+", 1) }))
    .where("id", "=", p.id)
    .whereRef("uses_left", "<", "uses_total"),
);
// Its jobs not yet sent have no account left to make: their payloads (the sealed password) go,
// and those still queued (a sender's lease too) are failed so none is taken again.
const voidJobs = query((q, p: { userId: number; now: number }) =>
  q
    .updateTable("outbox")
    .set((eb) => ({
      payload: null,
      lease_until: null,
      state: eb.case().when("state", "=", sql.lit("queued")).then(sql.lit<"failed">("failed")).else(eb.ref("state")).end(),
      last_error: eb.case().when("state", "=", sql.lit("queued")).then(sql.lit("account removed")).else(eb.ref("last_error")).end(),
      done_at: eb.fn.coalesce("done_at", eb.val(p.now)),
    }))
    .where("user_id", "=", p.userId)
    .where("kind", "=", sql.lit("provision"))
    .where("state", "<>", sql.lit("sent")),
);
const dropQueuedEvents = query((q, p: { userId: number }) =>
  q.deleteFrom("outbox").where("user_id", "=", p.userId).where("kind", "=", sql.lit("event")).where("state", "=", sql.lit("queued")),
);
const forgetTokens = query((q, p: { before: number }) =>
  q
    .updateTable("users")
    .set({ token_hash: null })
    .where("state", "=", sql.lit("active"))
    .where("token_hash", "is not", null)
    .where("verified_at", "<", p.before),
);
const findLogin = query((q, p: { username: string }) =>
  q
    .selectFrom("users")
    .select(["id", "username", "password_hash"])
    .where("username", "=", p.username)
    .where("state", "=", sql.lit("active")),
);

const findById = query((q, p: { id: number }) =>
  q.selectFrom("users").select(ACCOUNT_COLUMNS).where("id", "=", p.id).where("state", "=", sql.lit("active")),
);

// The inviter is joined by id, not by name: a newcomer under a deleted inviter's name is nobody's inviter.
const LINEAGE_COLUMNS = [
  "u.id", "u.username", "u.created_at", "u.mail_hash", "u.invited_by", "u.inviter_kind", "u.inviter_id", "p.id as live_inviter_id",
] as const;
const listLineage = query((q) =>
  q
    .selectFrom("users as u")
    .leftJoin("users as p", (join) => join.onRef("p.id", "=", "u.inviter_id").on("p.state", "=", sql.lit("active")))
    .select(LINEAGE_COLUMNS)
    .where("u.state", "=", sql.lit("active"))
    .orderBy("u.username"),
);
const listSubtree = query((q, p: { root: string }) =>
  q
    .withRecursive("tree(id)", (r) =>
      r
        .selectFrom("users")
        .select("id")
        .where("username", "=", p.root)
        .where("state", "=", sql.lit("active"))
        .union(
          r
            .selectFrom("users as c")
            .innerJoin("tree as t", "t.id", "c.inviter_id")
            .select("c.id")
            .where("c.state", "=", sql.lit("active")),
        ),
    )
    .selectFrom("tree")
    .innerJoin("users as u", "u.id", "tree.id")
    .leftJoin("users as p", (join) => join.onRef("p.id", "=", "u.inviter_id").on("p.state", "=", sql.lit("active")))
    .select(LINEAGE_COLUMNS)
    .orderBy("u.created_at")
    .orderBy("u.id"),
);

function toLineage(
  row: Pick<Selectable<Tables["users"]>, (typeof ACCOUNT_COLUMNS)[number] | "inviter_kind" | "inviter_id"> & { live_inviter_id: number | null },
): AccountLineage {
  return {
    ...toAccount(row),
    inviterKind: row.inviter_kind,
    inviterId: row.live_inviter_id,
    inviterDeleted: row.inviter_id !== null && row.live_inviter_id === null,
  };
}

export function accountsStore(
  db: Db,
): Pick<Store, "listAccounts" | "findAccountById" | "listLineage" | "deleteAccount" | "removeAccount" | "forgetTokensVerifiedBefore" | "findLogin"> {
  return {
    async listAccounts() {
      return (await db.run("rerun", (q) => listAccounts(q, {}))).rows.map(toAccount);
    },

    async findAccountById(id) {
      const [row] = (await db.run("rerun", (q) => findById(q, { id }))).rows;
      return row ? toAccount(row) : null;
    },

    async listLineage(root) {
      const { rows } = await db.run("rerun", (q) => (root === undefined ? listLineage(q, {}) : listSubtree(q, { root })));
      return rows.map(toLineage);
    },

    async deleteAccount(username) {
      // A second run would report the account it deleted as not found.
      return affected(await db.run("once", (q) => deleteAccount(q, { username }))) > 0;
    },

    async removeAccount(username, now, jobs, options = {}) {
      return db.write(async (tx): Promise<AccountSummary | null> => {
        const [row] = (await removeActive(tx, { username })).rows;
        if (!row) return null;
        const account = toAccount(row);
        if (options.restoreInvite && row.invite_id != null) await giveUseBack(tx, { id: row.invite_id });
        await voidJobs(tx, { userId: account.id, now });
        await dropQueuedEvents(tx, { userId: account.id });
        await insertOutbox(tx, jobs(account), null);
        // The erased payloads may linger in SQLite's WAL until purgeErased.
        db.erased = true;
        return account;
        // A second run would report the account it removed as not found (and queue no remove jobs).
      }, "unavailable");
    },

    async forgetTokensVerifiedBefore(before) {
      return affected(await db.run("rerun", (q) => forgetTokens(q, { before })));
    },

    async findLogin(username) {
      const [row] = (await db.run("rerun", (q) => findLogin(q, { username }))).rows;
      return row ? { id: row.id, username: row.username, passwordHash: row.password_hash } : null;
    },
  };
}

/** A users row as a bulk load brings it (the benchmark's seeding): a pending registration or an account. */
export interface ImportedUser {
  username: string;
  /** usernameSkeleton(username), as a registration stores it. */
  skeleton: string;
  passwordHash: string;
  mailHash: string;
  state: "pending" | "active";
  tokenHash: string | null;
  ip: string | null;
  createdAt: number;
  expiresAt: number | null;
  verifiedAt: number | null;
}

/** Rows per INSERT: two statement texts at most (a full batch and the last one), far below either dialect's parameter limit. */
const IMPORT_BATCH = 500;

/**
 * Stores `users` in one transaction, a batch of rows per statement; returns how many. On SQLite
 * the page cache may grow to 1 GB meanwhile: random keys in the unique indexes otherwise have
 * it spill and reread pages all along (a 1.1M-row load took about a third longer).
 */
export async function importUsers(db: Db, users: Iterable<ImportedUser>): Promise<number> {
  if (db.dialect !== "sqlite") return insertUsers(db, users);
  const { rows } = await sql<{ cache_size: number }>`PRAGMA cache_size`.execute(db.q);
  await sql`PRAGMA cache_size = -1000000`.execute(db.q);
  try {
    return await insertUsers(db, users);
  } finally {
    await sql`PRAGMA cache_size = ${sql.raw(String(rows[0]?.cache_size ?? -2000))}`.execute(db.q);
  }
}

async function insertUsers(db: Db, users: Iterable<ImportedUser>): Promise<number> {
  return db.write(async (tx) => {
    let count = 0;
    let batch: Insertable<Tables["users"]>[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      await tx.insertInto("users").values(batch).execute();
      count += batch.length;
      batch = [];
    };
    for (const user of users) {
      batch.push({
        username: user.username,
        skeleton: user.skeleton,
        password_hash: user.passwordHash,
        mail_hash: user.mailHash,
        state: user.state,
        token_hash: user.tokenHash,
        ip: user.ip,
        created_at: user.createdAt,
        expires_at: user.expiresAt,
        verified_at: user.verifiedAt,
      });
      if (batch.length === IMPORT_BATCH) await flush();
    }
    await flush();
    return count;
    // A second run would insert the rows again: the load is to be started over.
  }, "unavailable");
}
