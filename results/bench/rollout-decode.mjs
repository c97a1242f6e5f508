// Time of one quick-start rollout batch, split by backend op: 8 GraphLI prompts (depths 1-2) x 8
// samples, temperature 1, up to 900 new tokens, from a trained model (a quick start's sft-model).
// Every backend method is wrapped with a timer (the CPU backend's ops are synchronous).
//
//   node results/bench/rollout-decode.mjs RUN/sft-model      (after npm run build)
import { createBackend } from "../../dist/src/backend/index.js";
import { loadCheckpoint } from "../../dist/src/model/checkpoint.js";
import { generate } from "../../dist/src/model/generate.js";
import { Tokenizer } from "../../dist/src/model/tokenizer.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { generate as generateInstance } from "../../dist/src/tasks/index.js";

const dir = process.argv[2];
if (!dir) throw new Error("usage: node results/bench/rollout-decode.mjs MODEL_DIR");
const be = await createBackend("cpu", { threads: Number(process.env.THREADS ?? 2) });
const times = new Map();
const names = new Set(Object.keys(be));
for (let p = Object.getPrototypeOf(be); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) for (const n of Object.getOwnPropertyNames(p)) names.add(n);
for (const name of names) {
  const f = be[name];
  if (typeof f !== "function" || name === "constructor") continue;
  be[name] = function (...args) {
    const t0 = performance.now();
    const r = f.apply(this, args);
    const e = times.get(name) ?? [0, 0];
    e[0] += performance.now() - t0;
    e[1]++;
    times.set(name, e);
    return r;
  };
}
const model = (await loadCheckpoint(dir, be)).model;
const policy = new Policy(model, await Tokenizer.load(dir), null, 16, 64);
const prompts = [];
for (let i = 0; i < 8; i++) {
  const inst = generateInstance("graphli", { depth: 1 + (i % 2), seed: 500 + i });
  for (let g = 0; g < 8; g++) prompts.push(policy.encodePrompt(inst.prompt));
}
const t0 = performance.now();
const gens = await generate(model, prompts, { maxNewTokens: 900, sampling: { temperature: 1, topP: 1, topK: 0, minP: 0 }, seed: 1, eosIds: [policy.eosId], padId: policy.padId });
const ms = performance.now() - t0;
const lens = gens.map((g) => g.tokens.length);
const total = lens.reduce((a, b) => a + b, 0);
console.log(`generate ${ms.toFixed(0)} ms: ${total} tokens (longest ${Math.max(...lens)}), ${((total / ms) * 1000).toFixed(0)} tok/s`);
for (const [name, [t, n]] of [...times].sort((a, b) => b[1][0] - a[1][0]).slice(0, 8)) console.log(`  ${name.padEnd(24)} ${t.toFixed(0).padStart(6)} ms  ${String(n).padStart(6)} calls`);
