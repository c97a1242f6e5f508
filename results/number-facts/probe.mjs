// Probe: how fast does the tiny GraphLA model learn the number facts of GraphLA's traces alone?
// Drill items are the "so X = <chain> = v" steps of generated traces (the exact distribution),
// prompt "Compute <expr>.", completion "<think>- <chain> = v</think><answer>v</answer>".
// usage: node arith-probe.mjs OUT STEPS MODE   (MODE: chain = one operation per "=", flat = expr = v)
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createBackend } from "../../dist/src/backend/index.js";
import { initModel } from "../../dist/src/model/init.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { runSft } from "../../dist/src/rl/sft.js";
import { generate, taskTokenizerInput } from "../../dist/src/tasks/index.js";
const [out, stepsArg, mode] = process.argv.slice(2);
const steps = +stepsArg;
const EVERY = +(process.env.EVERY ?? 250);
const facts = (seed0, n) => {
  const got = [];
  for (let seed = seed0; got.length < n; seed++) {
    const inst = generate("graphla", { depth: 1 + (seed % 4), seed, answerable: seed % 2 === 0 });
    for (const m of inst.trace.matchAll(/so [A-Z][a-z]+ = ([-+*/()= \d]+?) = (-?\d+)\./g)) {
      const chain = m[1].split(" = ");
      got.push({ expr: chain[0], chain: mode === "flat" ? [chain[0]] : chain, value: m[2] });
    }
  }
  return got.slice(0, n);
};
const train = facts(1_000_000, 200_000), test = facts(1, 256);
const seen = new Set(train.map((f) => f.expr));
const init = join(out, "init");
if (!existsSync(join(init, "config.json"))) await initModel({ preset: "tiny", ...taskTokenizerInput("graphla"), out: init, seed: 1 });
const backend = await createBackend("cpu", { threads: 1 });
const policy = await Policy.load(init, backend);
const item = (f) => ({ prompt: `Compute ${f.expr}.`, trace: `${f.chain.join(" = ")} = ${f.value}`, answer: f.value });
const t0 = Date.now();
const evalNow = async (s) => {
  const gens = await policy.generate(test.map((f) => item(f).prompt), { maxNewTokens: 40, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 0 });
  let right = 0, rightSeen = 0, nSeen = 0, one = [0, 0], two = [0, 0];
  gens.forEach((g, k) => {
    const ok = g.text.includes(`<answer>${test[k].value}</answer>`);
    right += ok;
    if (seen.has(test[k].expr)) { nSeen++; rightSeen += ok; }
    const o = (test[k].expr.match(/ [-+] |\*|\//g) ?? []).length >= 2 ? two : one;
    o[0] += ok; o[1]++;
  });
  console.log(`${mode} step ${s} ${((Date.now() - t0) / 1000).toFixed(0)} s: ${(100 * right / test.length).toFixed(1)}% (one-op ${one[0]}/${one[1]}, two-op ${two[0]}/${two[1]}; expr seen in training ${rightSeen}/${nSeen})  e.g. ${JSON.stringify(gens[0].text)}`);
};
await runSft(policy, {
  steps, lr: 3e-3, batch: 64,
  instances: (s, j) => item(train[(s * 64 + j) % train.length]),
  onStep: async (s, loss) => { if ((s + 1) % EVERY === 0) { console.log(`loss ${loss.toFixed(4)}`); await evalNow(s + 1); } },
});
