// Runs Argon2 off the event loop. Plain JavaScript: worker threads are not loaded through tsx.
import { setPriority } from "node:os";
import { parentPort } from "node:worker_threads";
import { hashSync, verifySync } from "@node-rs/argon2";

// On Linux a thread's nice value is its own: hashing yields the CPU to the thread that answers
// requests, so refusals stay fast while a flood of sign-ups is being hashed.
try {
  setPriority(10);
} catch {
  // Not allowed here; hashing then competes at normal priority.
}

parentPort.on("message", (task) => {
  try {
    const result = task.op === "hash" ? hashSync(task.password, task.options) : verifySync(task.hash, task.password);
    parentPort.postMessage({ id: task.id, result });
  } catch (err) {
    parentPort.postMessage({ id: task.id, error: err instanceof Error ? err.message : String(err) });
  }
});
