// Probe: can the tiny GraphLA model learn the partner look-up on its own? Trained on link sheets
// only (tasks/sheet.ts, from the induction init, batch 16, lr 3e-3), checked greedily on 48
// held-out sheets: the share of pairs whose line it writes exactly.
//   MODE label:   "Pita and Lasagna, with [7] Pita costs 9 more than Lasagna."  (as the trace quotes)
//   MODE subject: "Pita and Lasagna, with Pita costs 9 more than Lasagna."      (no label)
//   MODE after:   "Pita and Lasagna, with Pita costs 9 more than Lasagna [7]."  (the label last)
// usage: node link-probe.mjs OUT STEPS MODE   (run from this directory after `npm install`)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createBackend } from "../../../dist/src/backend/index.js";
import { initModel } from "../../../dist/src/model/init.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { runSft } from "../../../dist/src/rl/sft.js";
import { taskTokenizerInput } from "../../../dist/src/tasks/index.js";
import { linkSheet } from "../../../dist/src/tasks/sheet.js";
const [out, stepsArg, mode] = process.argv.slice(2);
if (!["label", "subject", "after"].includes(mode)) throw new Error("MODE is label, subject or after");
const steps = +stepsArg;
const EVERY = +(process.env.EVERY ?? 250);
const sheet = (seed) => {
  const s = linkSheet(seed);
  if (mode === "label") return s;
  const trace = s.trace.split("\n").map((l) => {
    const [, pair, label, quote] = l.match(/^(.*), with (\[\d+\]) (.*)\.$/);
    return mode === "subject" ? `${pair}, with ${quote}.` : `${pair}, with ${quote} ${label}.`;
  });
  return { ...s, trace: trace.join("\n") };
};
const test = Array.from({ length: 48 }, (_, i) => sheet(900_000 + i));
const init = join(out, "init");
if (!existsSync(join(init, "config.json"))) await initModel({ preset: "tiny", ...taskTokenizerInput("graphla"), out: init, seed: 1 });
const backend = await createBackend("cpu", { threads: 1 });
const policy = await Policy.load(init, backend);
const t0 = Date.now();
const evalNow = async (s) => {
  const gens = await policy.generate(test.map((t) => t.prompt), { maxNewTokens: 300, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 0 });
  let pairs = 0, right = 0;
  gens.forEach((g, k) => {
    const got = g.text.replace(/^<think>/, "").split("</think>")[0].split("\n").map((l) => l.replace(/^- /, ""));
    test[k].trace.split("\n").forEach((want, i) => { pairs++; right += got[i] === want ? 1 : 0; });
  });
  console.log(`${mode} step ${s} ${((Date.now() - t0) / 1000).toFixed(0)} s: ${right}/${pairs} pairs right (${(100 * right / pairs).toFixed(1)}%)  e.g. ${JSON.stringify(gens[0].text.slice(0, 160))}`);
};
await runSft(policy, {
  steps, lr: 3e-3, batch: 16,
  instances: (s, j) => sheet(s * 16 + j),
  onStep: async (s, loss) => { if ((s + 1) % EVERY === 0) { console.log(`loss ${loss.toFixed(4)}`); await evalNow(s + 1); } },
});
