// Prompt and ground-truth completion lengths, in tokens, of the sft-ceiling's held-out items
// (64 per depth, the same items as its evaluation), against the model's context (max_position_embeddings).
//   node results/sft-ceiling/current/context-lengths.mjs graphli results/sft-ceiling/current/graphli-2000-steps
//   node results/sft-ceiling/current/context-lengths.mjs graphla results/weak-starts/graphla
// (any checkpoint made for the task: only its tokenizer is read). Needs the build (npm install).
import { readFileSync } from "node:fs";
import { heldOut } from "../../../dist/src/rl/run.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { createBackend } from "../../../dist/src/backend/index.js";
import { completionFor } from "../../../dist/src/tasks/index.js";
const [task, dir] = process.argv.slice(2);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const ctx = JSON.parse(readFileSync(`${dir}/config.json`, "utf8")).max_position_embeddings;
for (const d of [1,2,3,4]) {
  const set = heldOut(task, 64, d, d, 0xce11);
  const rows = set.map(i => ({ p: p.encodePrompt(i.prompt).length, c: p.encodeCompletion(completionFor(i)).length, ans: i.answerable }));
  const tot = rows.map(r => r.p + r.c).sort((a,b)=>a-b);
  const over = rows.filter(r => r.p + r.c > ctx);
  console.log(task, "depth", d, "prompt median", rows.map(r=>r.p).sort((a,b)=>a-b)[32], "completion median", rows.map(r=>r.c).sort((a,b)=>a-b)[32], "max total", tot.at(-1), `over ${ctx}:`, over.length, "(answerable", over.filter(r=>r.ans).length + ")");
}
process.exit(0);
