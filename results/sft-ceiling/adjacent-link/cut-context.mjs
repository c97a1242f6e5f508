// Result digits late in depth-4 GraphLA traces, teacher-forced: is the argmax right with the whole
// context, and with the completion cut to its last KEEP tokens before the digit (the prompt kept
// whole)? If a long context dilutes the arithmetic, the cut context does better.
// usage: node cut-context.mjs MODEL_DIR [N=64] [KEEP=120] [MIN_POSITION=450]
import { createBackend } from "../../../dist/src/backend/index.js";
import { Policy } from "../../../dist/src/rl/policy.js";
import { completionFor, generate } from "../../../dist/src/tasks/index.js";
const [dir, nS, keepS, minPosS] = process.argv.slice(2);
const N = +(nS ?? 64), KEEP = +(keepS ?? 120), MINPOS = +(minPosS ?? 450);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
async function argmaxLast(ids) {
  const acts = p.model.forward(Int32Array.from(ids), 1, ids.length, { noGrad: true });
  const logits = await be.read(p.model.logits(acts.hidden));
  acts.dispose();
  const V = logits.length / ids.length, r = (ids.length - 1) * V;
  let a = 0;
  for (let v = 1; v < V; v++) if (logits[r + v] > logits[r + a]) a = v;
  return a;
}
let n = 0, full = 0, cut = 0;
for (let j = 0; j < N; j++) {
  const inst = generate("graphla", { depth: 4, seed: 778000 + j, answerable: j % 2 === 0 });
  const completion = completionFor(inst);
  const pr = p.encodePrompt(inst.prompt), co = p.encodeCompletion(completion);
  // result digits: the digit tokens after the last " =" of a "so X = ... = R." line
  const pieces = co.map((id) => p.tokenizer.decode([id]));
  for (let k = 0; k < co.length; k++) {
    if (pr.length + k < MINPOS || !/^\d$/.test(pieces[k])) continue;
    // walk back over digits and one " " to find " ="; require a second " =" earlier on the line
    let b = k - 1;
    while (b >= 0 && /^\d$/.test(pieces[b])) b--;
    if (pieces[b] !== " " || pieces[b - 1] !== " =") continue;
    const line = pieces.slice(0, b - 1).join("").split("\n").at(-1);
    if (!/ so [A-Z][a-z]+ = /.test(line)) continue;
    n++;
    const whole = [...pr, ...co.slice(0, k)];
    if ((await argmaxLast(whole)) === co[k]) full++;
    if ((await argmaxLast([...pr, ...co.slice(Math.max(0, k - KEEP), k)])) === co[k]) cut++;
  }
}
console.log(`${dir}: ${n} result digits at position >= ${MINPOS} in ${N} depth-4 traces; argmax right with the whole context ${(100 * full / n).toFixed(1)}%, with the completion cut to its last ${KEEP} tokens ${(100 * cut / n).toFixed(1)}%`);
