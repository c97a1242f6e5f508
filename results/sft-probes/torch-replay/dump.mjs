// The batches mqar.mjs K=2 trains on (same seeds, same tokenizer), written to /tmp/tq/batches.json
// for train.py. Run from the repository root after mqar.mjs made runs/mqar-k2: node results/sft-probes/torch-replay/dump.mjs 800
import { createBackend } from "../../../dist/src/backend/index.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { packBatch } from "../../../dist/src/rl/batch.js";
import { generate, completionFor } from "../../../dist/src/tasks/index.js";
import { Rng } from "../../../dist/src/util/rng.js";
import { mkdirSync, writeFileSync } from "node:fs";
const K = 2, B = 32, S = +process.argv[2];
const dir = "runs/mqar-k2";
const corpus = Array.from({ length: 400 }, (_, j) => { const i = generate("graphli", { depth: 1 + (j % 6), seed: 5e6 + j }); return i.prompt + completionFor(i); });
const ATOMS = [...new Set(corpus.join(" ").match(/\b[a-z]+\b/g))].filter((w) => !["if", "then", "and", "not", "is", "true", "false", "so", "again", "think", "answer", "cannot", "be", "determined", "reason", "inside", "reply", "the", "premises", "do", "determine", "unknown", "question"].includes(w));
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const single = ATOMS.filter((a) => p.tokenizer.encode(" " + a).length === 1);
function item(seed) {
  const rng = new Rng(seed), pick = [];
  while (pick.length < K + K / 2) { const a = single[rng.below(single.length)]; if (!pick.includes(a)) pick.push(a); }
  const facts = pick.slice(0, K).map((a) => [a, rng.below(2) ? "true" : "false"]), absent = pick.slice(K);
  const ask = [...facts.map(([a, v]) => `${a} is ${v}`), ...absent];
  for (let j = ask.length - 1; j > 0; j--) { const k = rng.below(j + 1); [ask[j], ask[k]] = [ask[k], ask[j]]; }
  return { prompt: `Facts: ${facts.map(([a, v]) => `${a} is ${v}`).join(", ")}.`, completion: `Look up: ${ask.join(", ")}.` };
}
function scored(ids) { let text = ""; return ids.map((id) => { const piece = p.tokenizer.decode([id]); const k = /(: |, )$/.test(text) ? null : /[a-z]$/.test(text) && /(: |, )[a-z]+$/.test(text) ? (piece === " is" ? 1 : 2) : / is$/.test(text) ? 3 : 0; text += piece; return k; }); }
function batchOf(items) {
  const seqs = items.map((d) => ({ promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion) }));
  const batch = packBatch(seqs, p.padId);
  const kind = new Int32Array(batch.B * batch.T).fill(-1);
  seqs.forEach((q, b) => scored(q.completionIds).forEach((k, j) => { const t = b * batch.T + q.promptIds.length + j - 1; if (k === null) batch.targets[t] = -1; else kind[t] = k; }));
  return { T: batch.T, ids: Array.from(batch.ids), targets: Array.from(batch.targets), kind: Array.from(kind) };
}
const out = { B, steps: [], eval: batchOf(Array.from({ length: 64 }, (_, j) => item(9e8 + j))) };
for (let s = 0; s < S; s++) out.steps.push(batchOf(Array.from({ length: B }, (_, j) => item(s * B + j))));
mkdirSync("/tmp/tq", { recursive: true }); writeFileSync("/tmp/tq/batches.json", JSON.stringify(out));
console.log("dumped", S);
