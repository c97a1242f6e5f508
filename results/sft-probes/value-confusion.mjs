// The value reads of a probe checkpoint ("x is v" in a trace line, v true / false / unknown):
// the mean probability the model gives each value, by the right value (tells a model that cannot
// tell known from unknown from one that cannot tell true from false), then the flip test below.
// args: MODEL_DIR [N] [DEPTHS]; env TRACE=wsweep (default) | isweep, LOWER=1 / CAP=1 as in sft-probe.mjs
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { completionFor } from "../../dist/src/tasks/index.js";
import { variantInstance } from "./variants.mjs";
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 16), depths = (depthsS ?? "1,2").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const V = ["true", "false", "unknown"];
const TRACE = process.env.TRACE ?? "wsweep"; // or isweep, whose known atoms read "x is v"
const ids = V.map((v) => p.tokenizer.encode(" " + v));
if (ids.some((x) => x.length !== 1)) throw new Error("a value is not one token: " + JSON.stringify(ids));
// logits (T, V) of one prompt + completion, as a flat array
async function logitsOf(promptIds, completionIds) {
  const batch = packBatch([{ promptIds, completionIds }], p.padId);
  const acts = p.model.forward(batch.ids, 1, batch.T, { noGrad: true });
  const logits = await be.read(p.model.logits(acts.hidden));
  acts.dispose();
  return { logits, Vocab: logits.length / batch.T };
}
const conf = Object.fromEntries(V.map((v) => [v, { n: 0, p: [0, 0, 0], argmaxRight: 0 }]));
for (const d of depths) {
  const items = Array.from({ length: N }, (_, j) => variantInstance("graphli", TRACE, { depth: d, seed: 777000 + j, answerable: j % 2 === 0 }));
  for (const it of items) {
    const promptIds = p.encodePrompt(it.prompt), completionIds = p.encodeCompletion(completionFor(it));
    const { logits, Vocab } = await logitsOf(promptIds, completionIds);
    let text = "";
    completionIds.forEach((id, j) => {
      const piece = p.tokenizer.decode([id]);
      const line = text.slice(text.lastIndexOf("\n") + 1);
      const k = ids.findIndex((x) => x[0] === id);
      if (k >= 0 && /[:,] [a-z]+ is$/.test(line) && /^(- )?If/.test(line)) {
        const row = promptIds.length + j - 1;
        const z = ids.map((x) => logits[row * Vocab + x[0]]);
        const m = Math.max(...Array.from(logits.subarray(row * Vocab, (row + 1) * Vocab)));
        let s = 0; for (let c = 0; c < Vocab; c++) s += Math.exp(logits[row * Vocab + c] - m);
        const pr = z.map((x) => Math.exp(x - m) / s);
        const c = conf[V[k]]; c.n++; pr.forEach((x, i) => (c.p[i] += x)); if (pr.indexOf(Math.max(...pr)) === k) c.argmaxRight++;
      }
      text += piece;
    });
  }
}
console.log("right value   n    p(true) p(false) p(unknown)  argmax right");
for (const v of V) { const c = conf[v]; console.log(v.padEnd(12), String(c.n).padStart(4), ...c.p.map((x) => (x / c.n).toFixed(3).padStart(8)), (c.argmaxRight / c.n).toFixed(3).padStart(10)); }

// Flip test: does the model read a fact's value from the prompt, or guess it from the rule's
// literal (before its blocked rules the generator gave a leaf the value its step needs, so a
// literal's polarity told a fact's value)? For each prompt fact x, its first read in the trace ("x is ?") is scored
// twice: with the prompt as generated, and with x's fact flipped (trace prefix unchanged). A model
// that reads follows the flip; one that guesses from the literal does not.
let n = 0, follows = 0, pSame = 0, pFlip = 0;
for (const d of depths) {
  for (let j = 0; j < N; j++) {
    const it = variantInstance("graphli", TRACE, { depth: d, seed: 777000 + j, answerable: j % 2 === 0 });
    const completion = completionFor(it);
    for (const m of it.prompt.matchAll(/^- ([A-Za-z]+) is (true|false)\.$/gm)) {
      const [line, atom, value] = m;
      const read = completion.match(new RegExp(`[:,] ${atom.toLowerCase()} is `));
      if (!read) continue;
      const prefix = completion.slice(0, read.index + read[0].length - 1);
      const other = value === "true" ? "false" : "true";
      const probs = [];
      for (const prompt of [it.prompt, it.prompt.replace(line, `- ${atom} is ${other}.`)]) {
        const promptIds = p.encodePrompt(prompt), completionIds = p.encodeCompletion(prefix).slice(0, -1);
        const { logits, Vocab } = await logitsOf(promptIds, [...completionIds, 0]);
        const row = promptIds.length + completionIds.length - 1;
        const z = ids.map((x) => logits[row * Vocab + x[0]]), mz = Math.max(...z);
        const e = z.map((x) => Math.exp(x - mz)), s = e.reduce((a, b) => a + b);
        probs.push(e.map((x) => x / s)); // over true / false / unknown only
      }
      const k = V.indexOf(value), ko = V.indexOf(other);
      n++; pSame += probs[0][k]; pFlip += probs[1][ko]; if (probs[1][ko] > probs[1][k]) follows++;
    }
  }
}
console.log(`flip test: ${n} first reads of a prompt fact; p(right value) as generated ${(pSame / n).toFixed(3)}, after flipping the fact p(flipped value) ${(pFlip / n).toFixed(3)}; the flip wins ${follows} / ${n}`);
