// The look-ups of a jsweep checkpoint (variants.mjs juxtaposed): after each atom of a trace line's
// list ("foam true, coal, ..."), the argmax next token against the right one (its value, or
// "," / "." when unknown), by where the value comes from: a prompt fact, a value derived earlier in
// the trace, or none. Then the flip test of value-confusion.mjs: each prompt fact's first read
// scored again with that fact flipped in the prompt. args: MODEL_DIR [N] [DEPTHS]
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { completionFor } from "../../dist/src/tasks/index.js";
import { variantInstance } from "./variants.mjs";
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 16), depths = (depthsS ?? "1,2").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
async function logitsOf(prompt, completion) {
  const promptIds = p.encodePrompt(prompt), completionIds = p.encodeCompletion(completion);
  const batch = packBatch([{ promptIds, completionIds }], p.padId);
  const acts = p.model.forward(batch.ids, 1, batch.T, { noGrad: true });
  const logits = await be.read(p.model.logits(acts.hidden));
  acts.dispose();
  const V = logits.length / batch.T;
  const argmaxAt = (j) => { const r = (promptIds.length + j - 1) * V; let a = 0; for (let c = 1; c < V; c++) if (logits[r + c] > logits[r + a]) a = c; return a; };
  return { completionIds, argmaxAt };
}
const acc = { fact: [0, 0], derived: [0, 0], unknown: [0, 0] };
let flips = 0, flipN = 0;
for (const d of depths) for (let j = 0; j < N; j++) {
  const it = variantInstance("graphli", "jsweep", { depth: d, seed: 777000 + j, answerable: j % 2 === 0 });
  const facts = new Map([...it.prompt.matchAll(/^- ([a-z]+) (true|false)\.$/gm)].map((m) => [m[1], m[2]]));
  const completion = completionFor(it);
  const { completionIds, argmaxAt } = await logitsOf(it.prompt, completion);
  let text = "";
  completionIds.forEach((id, k) => {
    const piece = p.tokenizer.decode([id]), line = text.slice(text.lastIndexOf("\n") + 1), m = line.match(/^- If [^:]*:(?: [a-z]+(?: true| false)?,)* ([a-z]+)$/);
    if (m) { const kind = / (true|false)$/.test(piece) ? (facts.has(m[1]) ? "fact" : "derived") : "unknown"; acc[kind][1]++; if (argmaxAt(k) === id) acc[kind][0]++; }
    text += piece;
  });
  for (const [atom, value] of facts) { // flip test on the first read of each fact
    const at = completion.search(new RegExp(`[:,] ${atom} (true|false)`));
    if (at < 0) continue;
    const prefix = completion.slice(0, at + 2 + atom.length), other = value === "true" ? "false" : "true";
    const flipped = it.prompt.replace(`- ${atom} ${value}.`, `- ${atom} ${other}.`);
    const { completionIds: ids2, argmaxAt: am2 } = await logitsOf(flipped, prefix + " " + other);
    flipN++; if (am2(ids2.length - 2) === ids2[ids2.length - 2]) flips++;
  }
}
console.log(`${dir}: ${N} items per depth ${depths.join(",")}`);
for (const [k, [r, n]] of Object.entries(acc)) console.log(`${k.padEnd(8)} n ${String(n).padStart(4)}  argmax right ${(r / n).toFixed(3)}`);
console.log(`flip test: the flipped value is the argmax at ${flips} of ${flipN} first reads of a prompt fact`);
