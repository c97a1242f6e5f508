// Probe: drill sheets mixed into the weak start's SFT batches, instead of a drill before it.
// The experiment's weak-start SFT (GraphLA, depths 1-2, batch 16, lr 6e-3, the same base model and
// items), plus SHEETS rows per step, each a sheet of 16 trace steps: the prompt lists the
// expressions, the completion writes each with its chain and value (so the sheet also copies from
// the prompt). Every 250 steps: greedy answerable accuracy on the weak-start check's 128 depth-2
// items, and the steps it miscomputes there.
// usage (from the repository, after npm install): node results/number-facts/mixed-probe.mjs OUT STEPS SHEETS
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createBackend } from "../../dist/src/backend/index.js";
import { initModel } from "../../dist/src/model/init.js";
import { evaluate } from "../../dist/src/rl/eval.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { heldOut } from "../../dist/src/rl/run.js";
import { runSft } from "../../dist/src/rl/sft.js";
import { generate, taskTokenizerInput } from "../../dist/src/tasks/index.js";
import { mixSeed, PURPOSE } from "../../dist/src/util/seed.js";
const [out, stepsArg, sheetsArg] = process.argv.slice(2);
const steps = +stepsArg, sheets = +sheetsArg;
const EVERY = +(process.env.EVERY ?? 250);
const factsOf = (trace) => [...trace.matchAll(/, so [A-Z][a-z]+ = ([-+*/() \d]+?) = (-?\d+)\./g)].map((m) => ({ expr: m[1], value: m[2] }));
let pool = [], next = 0;
const fact = () => {
  while (pool.length === 0) {
    const s = mixSeed(7, next++, PURPOSE.sft, 0xfac7);
    pool = factsOf(generate("graphla", { depth: 1 + (s % 4), seed: s, answerable: s % 2 === 0 }).trace);
  }
  return pool.shift();
};
const sheet = (k) => {
  const fs = Array.from({ length: 16 }, fact);
  return { id: `sheet-${k}`, task: "sheet", prompt: `Compute each:\n${fs.map((f) => `- ${f.expr}`).join("\n")}`, answer: "done", trace: fs.map((f) => `${f.expr} = ${f.value}`).join("\n"), depth: 1, distractors: 0, answerable: true, seed: 0 };
};
const init = join(out, "init");
if (!existsSync(join(init, "config.json"))) await initModel({ preset: "tiny", ...taskTokenizerInput("graphla"), out: init, seed: 1 });
const policy = await Policy.load(init, await createBackend("cpu", { threads: +(process.env.THREADS ?? 0) }));
const probe = heldOut("graphla", 128, 2, 2, 0x3eab);
const t0 = Date.now();
let k = 0;
await runSft(policy, {
  steps, lr: 6e-3, batch: 16 + sheets,
  instances: (s, j) => (j < 16 ? generate("graphla", { depth: 1 + (mixSeed(1, s, j, PURPOSE.sft, 1) % 2), seed: mixSeed(1, s, j, PURPOSE.sft) }) : sheet(k++)),
  onStep: async (s, loss) => {
    if ((s + 1) % EVERY !== 0) return;
    const { result, samples } = await evaluate(policy, probe, 700);
    let stepsAll = 0, wrongSteps = 0;
    const val = (e) => { try { return Function(`return (${e})`)(); } catch { return NaN; } };
    for (const x of samples) for (const f of factsOf(x.completion)) { stepsAll++; if (val(f.expr) !== +f.value) wrongSteps++; }
    const answered = result.acc_answerable * 64 / Math.max(1, 64 * (1 - result.abstain_answerable));
    console.log(`sheets ${sheets} step ${s + 1} loss ${loss.toFixed(3)} ${((Date.now() - t0) / 1000).toFixed(0)} s: answerable ${(100 * result.acc_answerable).toFixed(1)}% (right on ${(100 * answered).toFixed(1)}% of those it answers), unanswerable ${(100 * result.acc_unanswerable).toFixed(1)}%; steps miscomputed ${wrongSteps} of ${stepsAll}`);
  },
});
