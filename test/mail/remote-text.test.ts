import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { scrubRemoteText } from "../../src/scrub.ts";
import { postRegistrationJson, registration, withHarness, type Harness } from "../helpers/harness.ts";

// Issue 10, item 2 (DESIGN §7 "Secrets at rest"): an SMTP server that names the recipient in its
// refusal must not put the address into the log or into outbox.last_error. The reply code and the
// enhanced status code stay, so an operator can still tell why a mail failed.

const MAIL = "victim.name+tag@example.org";
const LOCAL = "victim.name+tag";

/** What the outbox kept about the one mail: its state and last_error, read from the SQLite file itself. */
function outboxRow(h: Harness): { state: string; last_error: string | null; attempts: number } {
  const db = new Database(join(h.dir, "gatehouse.db"), { readonly: true });
  try {
    return db.prepare("SELECT state, last_error, attempts FROM outbox WHERE kind = 'mail'").get() as { state: string; last_error: string | null; attempts: number };
  } finally {
    db.close();
  }
}

/** The database file and its WAL, as bytes a local reader could copy. */
function databaseBytes(h: Harness): string {
  const read = (file: string) => {
    try {
      return readFileSync(join(h.dir, file)).toString("latin1");
    } catch {
      return "";
    }
  };
  return read("gatehouse.db") + read("gatehouse.db-wal");
}

function assertNoAddress(h: Harness, where: string): void {
  for (const needle of [MAIL, LOCAL, "victim.name"]) {
    const lines = h.logs.raw.filter((line) => line.toLowerCase().includes(needle));
    assert.deepEqual(lines, [], `${where}: no log line names ${needle}`);
    assert.ok(!databaseBytes(h).includes(needle), `${where}: the database files do not hold ${needle}`);
  }
}

for (const [code, kind, message, level, state] of [
  [550, "a 5xx refusal", `5.1.1 <${MAIL}>: Recipient address rejected: User unknown in local recipient table`, 50, "failed"],
  [450, "a 4xx refusal", `4.2.1 "${LOCAL}" is over quota; mailbox ${MAIL} unavailable`, 40, "queued"],
] as const) {
  test(`${kind} naming the recipient (${code}) keeps its codes and loses the address, in the log and in last_error`, async () => {
    await withHarness({}, async (h) => {
      const sink = h.smtp.sink;
      const res = await postRegistrationJson(h, registration({ username: "victim", mail: MAIL }));
      assert.equal(res.status, 200, res.text);
      await h.outbox.drain();
      assert.deepEqual(sink.rcptAttempts, [MAIL], "the server was asked for the address and refused it");
      if (state === "queued") {
        // Every retry writes last_error and a log line again.
        h.clock.advance(60_000);
        await h.outbox.drain();
        assert.equal(sink.rcptAttempts.length, 2);
      }

      const row = outboxRow(h);
      assert.equal(row.state, state);
      assert.ok(row.last_error, "last_error is kept");
      assert.match(row.last_error, new RegExp(`${code} ${message.slice(0, 5).replace(/\./g, "\\.")}`), "reply code and enhanced status stay");
      assert.match(row.last_error, /\[address\]/);
      const lines = h.logs.lines.filter((l) => l["outboxId"] !== undefined && l["reason"] !== undefined);
      assert.ok(lines.length >= 1, "the refusal is logged");
      for (const line of lines) {
        assert.equal(line["level"], level);
        assert.match(String(line["reason"]), new RegExp(`${code} ${message.slice(0, 5).replace(/\./g, "\\.")}`));
      }
      assertNoAddress(h, kind);
    }, { smtp: { refuseRcpt: { code, message } } });
  });
}

test("scrubRemoteText removes addresses in every shape servers write them and keeps the codes", () => {
  const cases: [string, string][] = [
    [`550 5.1.1 <${MAIL}>: Recipient address rejected`, "550 5.1.1 <[address]>: Recipient address rejected"],
    [`550 5.1.1 ${MAIL.toUpperCase()}: user unknown`, "550 5.1.1 [address]: user unknown"],
    ["550 5.1.1 <bob>: Recipient address rejected", "550 5.1.1 <[address]>: Recipient address rejected"],
    ['550 5.1.1 "bob smith": no such user', '550 5.1.1 "[address]": no such user'],
    ["Can't send mail: 550 5.1.1 User 'bob' unknown", "Can't send mail: 550 5.1.1 User '[address]' unknown"],
    ["550 5.1.1 RESOLVER.ADR.RecipientNotFound; Recipient other@example.net not found", "550 5.1.1 RESOLVER.ADR.RecipientNotFound; Recipient [address] not found"],
    ["see ?to=bob%40example.org for help", "see [address] for help"],
    ["webhook answered 503", "webhook answered 503"],
  ];
  for (const [text, expected] of cases) assert.equal(scrubRemoteText(text), expected, text);
  // A known recipient's bare local part goes too, as a whole word only.
  assert.equal(
    scrubRemoteText("550 5.1.1 mailbox victim.name+tag unavailable (victim.name+tagged is another)", [MAIL]),
    "550 5.1.1 mailbox [address] unavailable (victim.name+tagged is another)",
  );
  assert.ok(scrubRemoteText("x".repeat(5000)).length <= 500, "long replies are cut");
});
