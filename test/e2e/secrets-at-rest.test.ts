import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../../src/config.ts";
import { Sealer } from "../../src/domain/secrets.ts";
import { anyHolds, assertNoneInClear, sqliteFiles } from "../helpers/files.ts";
import { FakeClock, registration } from "../helpers/harness.ts";
import { countLogs, editConfig, postRegistrationTo, waitFor, withServiceDir, type ServiceDir, type TestService } from "../helpers/service.ts";

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

/** Puts the store and the mail directory in `data/`, a directory the service has to make itself. */
function useDataDir({ cfg }: ServiceDir): string {
  const data = join(cfg.dir, "data");
  cfg.replace(editConfig(cfg.raw, (c) => {
    c.storage = `sqlite:${join(data, "gatehouse.db")}`;
    c.mail.transport = `dir:${join(data, "mail")}`;
  }));
  return data;
}

/** Every sealed string the service makes from now on, as an attacker who saw it in the outbox would have it. */
function recordSealed(svc: TestService): string[] {
  const sealed: string[] = [];
  const sealer = svc.service.ctx.sealer;
  const seal = sealer.seal.bind(sealer);
  sealer.seal = (plain: string) => {
    const out = seal(plain);
    sealed.push(out);
    return out;
  };
  return sealed;
}

/**
 * What a local user who copied the files could decrypt: every base64 run in them, opened with the
 * key derived from the service secret (which, kept in the store, they would have too).
 */
function decryptable(files: Map<string, Buffer>, secret: string): string[] {
  const sealer = new Sealer(secret);
  const found: string[] = [];
  for (const bytes of files.values()) {
    for (const [run] of bytes.toString("latin1").matchAll(/[A-Za-z0-9+/]{40,}={0,2}/g)) {
      // Neighbouring bytes of the row may read as base64 too: try a few starts and ends.
      for (let start = 0; start <= 16; start++) {
        for (let end = run.length; end >= run.length - 16 && end - start >= 40; end--) {
          try {
            found.push(sealer.open(run.slice(start, end)));
          } catch {
            // not a sealed payload, or not a whole one
          }
        }
      }
    }
  }
  return found;
}

/** Fails when any 24-character piece of a sealed payload is still in the files. */
function assertNoSealedPiece(files: Map<string, Buffer>, sealed: string[]): void {
  for (const payload of sealed) {
    for (let i = 0; i + 24 <= payload.length; i += 12) {
      const piece = payload.slice(i, i + 24);
      for (const [file, bytes] of files) assert.equal(bytes.indexOf(piece, 0, "latin1"), -1, `${file} holds a piece of a sealed payload`);
    }
  }
}

test("a new store's directory is 0700 and its database, WAL and shared-memory files 0600, also under umask 022; dir: mail too", () =>
  withServiceDir({}, async (dir) => {
    const data = useDataDir(dir);
    const previous = process.umask(0o022);
    try {
      const svc = await dir.start({ background: false });
      const res = await postRegistrationTo(svc.service.url, registration());
      assert.equal(res.status, 200, res.text);
      await svc.service.outbox.drain();
      await postRegistrationTo(svc.service.url, registration());
      assert.equal(mode(data), "700");
      for (const suffix of ["", "-wal", "-shm"]) assert.equal(mode(join(data, `gatehouse.db${suffix}`)), "600", `gatehouse.db${suffix}`);
      const mailDir = join(data, "mail");
      assert.equal(mode(mailDir), "700");
      const mails = readdirSync(mailDir);
      assert.equal(mails.length, 1);
      assert.equal(mode(join(mailDir, mails[0]!)), "600");
    } finally {
      process.umask(previous);
    }
  }));

test("a store and mail directory left open to other users are tightened at start-up, each with a warning", () =>
  withServiceDir({}, async (dir) => {
    const data = useDataDir(dir);
    let svc = await dir.start();
    assert.equal(countLogs(svc.logs, "store file permissions tightened"), 0);
    await dir.stop();
    chmodSync(data, 0o755);
    chmodSync(join(data, "gatehouse.db"), 0o644);
    chmodSync(join(data, "mail"), 0o755);

    svc = await dir.start();
    const warnings = svc.logs.lines.filter((l) => l["level"] === 40).map((l) => `${String(l["msg"])}: ${String(l["reason"])}`);
    assert.ok(warnings.some((w) => w.includes(`directory ${data} was open to other users (mode 0755); made it 0700`)), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.includes(`file ${join(data, "gatehouse.db")} was open to other users (mode 0644); made it 0600`)), warnings.join("\n"));
    assert.ok(warnings.some((w) => w.startsWith("mail directory permissions tightened") && w.includes("0755")), warnings.join("\n"));
    assert.equal(mode(data), "700");
    assert.equal(mode(join(data, "gatehouse.db")), "600");
    assert.equal(mode(join(data, "mail")), "700");
    const res = await postRegistrationTo(svc.service.url, registration());
    assert.equal(res.status, 200, res.text);
  }));

test("a store in a shared directory (mode 1777) is refused at start-up, naming the directory, and nothing is created", () =>
  withServiceDir({}, async (dir) => {
    const shared = join(dir.cfg.dir, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    dir.cfg.replace(editConfig(dir.cfg.raw, (c) => void (c.storage = `sqlite:${join(shared, "gatehouse.db")}`)));
    await assert.rejects(dir.start(), new RegExp(`${shared} is a shared directory \\(mode 1777\\); give gatehouse's files a directory of their own`));
    assert.equal(existsSync(join(shared, "gatehouse.db")), false);
  }));

test("a store file another user owns and leaves readable refuses start-up with a clear message", (t) =>
  withServiceDir({}, async ({ cfg }) => {
    if (process.getuid?.() !== 0) return t.skip("needs root to run a process as another user (nobody)");
    // The directory is nobody's, so it is not the problem; the database is root's and 0644.
    const data = join(cfg.dir, "data");
    mkdirSync(data, { mode: 0o700 });
    chownSync(data, 65534, 65534);
    chmodSync(cfg.dir, 0o755);
    const db = join(data, "gatehouse.db");
    writeFileSync(db, "");
    chmodSync(db, 0o644);
    const script = `import(${JSON.stringify(join(PACKAGE_ROOT, "src/store/open.ts"))}).then((m) => m.openStore(${JSON.stringify(`sqlite:${db}`)}))
      .then(() => console.log("opened"), (err) => console.log(err.message))`;
    const child = spawnSync(process.execPath, ["--import", "tsx", "-e", script], { uid: 65534, gid: 65534, cwd: PACKAGE_ROOT, encoding: "utf8" });
    assert.equal(child.stderr, "");
    assert.equal(
      child.stdout.trim(),
      `file ${db} is open to other users (mode 0644) and cannot be made 0600 (EPERM); run gatehouse as its owner or run: chmod 600 ${db}`,
    );
    assert.equal(mode(db), "644");
  }));

test("once its mail is sent, no copy of the address, the token or the sealed payload is left in the database, WAL or shm file", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const fields = registration({ username: "kira", mail: "kira.erased@example.org" });
    // No background sender: the test decides when the mail goes out.
    const svc = await start({ background: false });
    const sealed = recordSealed(svc);
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    const token = res.text;
    const secret = svc.service.ctx.secret;
    assert.equal(sealed.length, 1);

    // The control: while queued, the copied files give the address and the link away to whoever has the key.
    const queued = decryptable(sqliteFiles(cfg.dir), secret);
    assert.ok(queued.some((plain) => plain.includes(fields.mail) && plain.includes(token)), "the scan opens the queued payload");

    await svc.service.outbox.drain();
    assert.equal((await svc.service.ctx.store.listPending(Date.now()))[0]?.mailStatus, "sent");
    const files = sqliteFiles(cfg.dir);
    assert.ok(anyHolds(files, "kira"), "the username is stored in the clear, so the scan sees the rows");
    assert.deepEqual(decryptable(files, secret), []);
    assertNoSealedPiece(files, sealed);
    assertNoneInClear(files, { "mail address": fields.mail, "mail local part": "kira.erased", token });
  }));

test("with the background sender, a sent mail's payload leaves the files within about a second", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const svc = await start();
    const sealed = recordSealed(svc);
    const fields = registration({ mail: "lou.background@example.org" });
    const res = await postRegistrationTo(svc.service.url, fields);
    assert.equal(res.status, 200, res.text);
    await waitFor(async () => (await svc.service.ctx.store.listPending(Date.now()))[0]?.mailStatus === "sent", { what: "the mail to be sent" });
    const sentAt = Date.now();
    await waitFor(() => decryptable(sqliteFiles(cfg.dir), svc.service.ctx.secret).length === 0, {
      timeoutMs: 3000,
      what: "the sent payload to leave the WAL",
    });
    assert.ok(Date.now() - sentAt < 2000, `took ${Date.now() - sentAt} ms`);
    const files = sqliteFiles(cfg.dir);
    assertNoSealedPiece(files, sealed);
    assertNoneInClear(files, { "mail address": fields.mail, token: res.text });
  }));

test("a pending registration voided by a new one for its name leaves no copy of its queued payload once the outbox has run", () =>
  withServiceDir({ register: { pendingTtlSeconds: 60 } }, async ({ cfg, start }) => {
    const clock = new FakeClock(Date.now());
    const svc = await start({ background: false, clock });
    const sealed = recordSealed(svc);
    const first = registration({ username: "lena", mail: "lena.voided@example.org" });
    assert.equal((await postRegistrationTo(svc.service.url, first)).status, 200);
    const voidedPayload = sealed[0]!;
    clock.advance(61_000);
    const second = registration({ username: "lena", mail: "lena.second@example.org" });
    assert.equal((await postRegistrationTo(svc.service.url, second)).status, 200);

    await svc.service.outbox.drain();
    const files = sqliteFiles(cfg.dir);
    assert.deepEqual(decryptable(files, svc.service.ctx.secret), []);
    assertNoSealedPiece(files, [voidedPayload]);
    assertNoneInClear(files, { "voided address": first.mail });
  }));

const EXTERNAL_SECRET = "0123456789012345678901234567890123456789"; // all digits: still a string

test("a secret from GATEHOUSE__SECRET_FILE is used and never enters the store's files", () =>
  withServiceDir({}, async ({ cfg, start }) => {
    const secretFile = join(cfg.dir, "secret.txt");
    writeFileSync(secretFile, `${EXTERNAL_SECRET}\n`, { mode: 0o600 });
    const svc = await start({ environment: { GATEHOUSE__SECRET_FILE: secretFile } });
    assert.equal(svc.service.ctx.secret, EXTERNAL_SECRET);
    const res = await postRegistrationTo(svc.service.url, registration({ mail: "mo.external@example.org" }));
    assert.equal(res.status, 200, res.text);
    await svc.service.outbox.drain();
    assert.equal(await svc.service.ctx.store.findStoredSecret(), null);
    assertNoneInClear(sqliteFiles(cfg.dir), { secret: EXTERNAL_SECRET });
  }));

test("a stored secret that the operator now gives from outside is removed from the store and its files; mail hashes still match", () =>
  withServiceDir({}, async ({ cfg, start, stop }) => {
    let svc = await start();
    const stored = svc.service.ctx.secret;
    assert.equal((await postRegistrationTo(svc.service.url, registration({ mail: "nia.kept@example.org" }))).status, 200);
    await stop();
    assert.ok(anyHolds(sqliteFiles(cfg.dir), stored), "the generated secret is in the store (the control)");

    svc = await start({ environment: { GATEHOUSE__SECRET: stored } });
    assert.equal(countLogs(svc.logs, "the configured secret is the one the store kept; removed it from the store"), 1);
    assert.equal(await svc.service.ctx.store.findStoredSecret(), null);
    assertNoneInClear(sqliteFiles(cfg.dir), { secret: stored });
    const again = await postRegistrationTo(svc.service.url, registration({ mail: "NIA.kept@example.org" }));
    assert.equal(again.status, 409, "the mail hash made with the stored secret still matches");
  }));

test("a secret given from outside that differs from the stored one refuses start-up and leaves the store as it was", () =>
  withServiceDir({}, async ({ start, stop }) => {
    let svc = await start();
    const stored = svc.service.ctx.secret;
    await stop();
    await assert.rejects(
      start({ environment: { GATEHOUSE__SECRET: EXTERNAL_SECRET } }),
      /the configured secret differs from the one kept in the store: mail hashes and queued mail made with the stored one would no longer match or open/,
    );
    svc = await start();
    assert.equal(svc.service.ctx.secret, stored);
  }));
