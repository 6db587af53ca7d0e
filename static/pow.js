// Registers the ALTCHA widget's SHA worker from gatehouse's own origin: the pages' Content-Security-Policy
// allows scripts and workers from 'self' only, so the widget's bundled (blob:) workers are not used.
const worker = new URL("sha-worker.js", import.meta.url);
for (const algorithm of ["SHA-256", "SHA-384", "SHA-512"]) {
  globalThis.$altcha.algorithms.set(algorithm, () => new Worker(worker));
}
