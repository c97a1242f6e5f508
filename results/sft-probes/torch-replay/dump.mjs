// The batches mqar.mjs K=2 trains on (same seeds, same tokenizer), written to /tmp/tq/batches.json
// for train.py. Run from the repository root after mqar.mjs made runs/mqar-k2: node results/sft-probes/torch-replay/dump.mjs 800
// (mqar-k2-torch.txt came from the task before 2026-12-01: PERM=1 ATOMLOSS=1 for both scripts.)
import { createBackend } from "../../../dist/src/backend/index.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { packBatch } from "../../../dist/src/rl/batch.js";
import { mkdirSync, writeFileSync } from "node:fs";
import { recallTask, unscored } from "../recall.mjs";
const B = 32, S = +process.argv[2];
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load("runs/mqar-k2", be);
const { item, scored } = recallTask(p.tokenizer, 2, false);
const KIND = { other: 0, "check fact": 1, "check none": 2, value: 3 }; // train.py's codes
function batchOf(items) {
  const seqs = items.map((d) => ({ promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion) }));
  const batch = packBatch(seqs, p.padId);
  const kind = new Int32Array(batch.B * batch.T).fill(-1);
  seqs.forEach((q, b) => scored(q.completionIds).forEach((k, j) => { const t = b * batch.T + q.promptIds.length + j - 1; if (unscored(k)) batch.targets[t] = -1; else kind[t] = KIND[k] ?? 0; }));
  return { T: batch.T, ids: Array.from(batch.ids), targets: Array.from(batch.targets), kind: Array.from(kind) };
}
const out = { B, steps: [], eval: batchOf(Array.from({ length: 64 }, (_, j) => item(9e8 + j))) };
for (let s = 0; s < S; s++) out.steps.push(batchOf(Array.from({ length: B }, (_, j) => item(s * B + j))));
mkdirSync("/tmp/tq", { recursive: true }); writeFileSync("/tmp/tq/batches.json", JSON.stringify(out));
console.log("dumped", S);
