// How long the resend form takes to answer when a registration has the name and address, when
// none has, and when the address is wrong: the answers must not tell them apart (README
// "Resending"). Real app, real SQLite file, in process; the cases are interleaved.
// Run: node --import tsx bench/resend-timing.ts [samples per case, default 60]
import { createHarness, postRegistration, registration } from "../test/helpers/harness.ts";

const samples = Number(process.argv[2] ?? 60);
const h = await createHarness({ register: { resendLimit: 100 } });
h.clock.t = Date.now();
const times: Record<string, number[]> = { match: [], "no registration": [], "wrong address": [] };
try {
  for (let i = 0; i < samples; i++) {
    const fields = registration({ username: `timing${i}`, mail: `timing${i}@example.org` });
    if ((await postRegistration(h, fields)).status !== 200) throw new Error("registration failed");
    const cases: [string, string, string][] = [
      ["match", fields.username, fields.mail],
      ["no registration", `nobody${i}`, `nobody${i}@example.org`],
      ["wrong address", fields.username, `wrong${i}@example.org`],
    ];
    cases.sort(() => Math.random() - 0.5);
    for (const [what, username, mail] of cases) {
      const started = performance.now();
      const res = await h.http.post("/register_account/verify/resend").type("form").send({ username, mail });
      times[what]!.push(performance.now() - started);
      if (res.status !== 200) throw new Error(`${what}: ${res.status}`);
    }
  }
} finally {
  await h.close();
}
const at = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
for (const [what, list] of Object.entries(times)) {
  const sorted = [...list].sort((a, b) => a - b);
  console.log(`${what.padEnd(16)} n=${sorted.length}  median ${at(sorted, 0.5).toFixed(2)} ms  p90 ${at(sorted, 0.9).toFixed(2)} ms  mean ${(sorted.reduce((a, b) => a + b, 0) / sorted.length).toFixed(2)} ms`);
}
