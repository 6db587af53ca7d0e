// Checkpoints a SQLite database's WAL off the event loop (dialect/sqlite.ts' Checkpointer).
// Plain JavaScript: worker threads are not loaded through tsx.
import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

const db = new Database(workerData.file, { fileMustExist: true });
// As the serving connection: the WAL is synced before its frames are copied, the file after.
db.pragma("synchronous = NORMAL");

// PASSIVE neither waits for nor blocks readers and writers; with nothing new in the WAL it does
// nothing, not even a sync. A failure (a full disk, a lock) is tried again at the next tick.
const timer = setInterval(() => {
  try {
    db.pragma("wal_checkpoint(PASSIVE)");
  } catch {
    // Tried again at the next tick.
  }
}, workerData.intervalMs);

parentPort.on("message", (message) => {
  if (message !== "close") return;
  clearInterval(timer);
  db.close();
  parentPort.postMessage("closed");
  parentPort.close();
});
