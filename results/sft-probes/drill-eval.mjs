// The existence check and value read in isolation: a checkpoint scored on held-out look-up drills
// (variants.mjs lookupDrill: "Look up: dust, spark is false, ..."). After each atom the right next
// token is " is" when the prompt states the atom as a fact and "," / "." when it does not; after
// " is", the fact's value. Prints p(right) and argmax accuracy for each kind, and the prior a model
// that never looks would get (the fraction of atoms that are facts).
// args: MODEL_DIR [N] [DEPTHS]; env TRACE / CAP as in sft-probe.mjs (the prompt's form)
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { variantInstance, lookupDrill } from "./variants.mjs";
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 32), depths = (depthsS ?? "1,2").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const TRACE = process.env.TRACE ?? "isweep";
const kinds = { "check, fact": [], "check, no fact": [], "value": [] };
const right = Object.fromEntries(Object.keys(kinds).map((k) => [k, 0]));
for (const d of depths) {
  for (let j = 0; j < N; j++) {
    const it = variantInstance("graphli", TRACE, { depth: d, seed: 888000 + j, answerable: j % 2 === 0 });
    const drill = lookupDrill(it, 888000 + j);
    const promptIds = p.encodePrompt(drill.prompt), completionIds = p.encodeCompletion(drill.completion);
    const batch = packBatch([{ promptIds, completionIds }], p.padId);
    const acts = p.model.forward(batch.ids, 1, batch.T, { noGrad: true });
    const logits = await be.read(p.model.logits(acts.hidden));
    acts.dispose();
    const Vocab = logits.length / batch.T;
    let text = "";
    completionIds.forEach((id, k) => {
      const piece = p.tokenizer.decode([id]);
      // the token after an atom (check) or after "atom is" (value); an atom follows ": " or ", "
      const kind = /(?:: |, )[a-z]+$/.test(text) && /^Look up/.test(text.slice(text.lastIndexOf("<think>") + 7))
        ? (piece === " is" ? "check, fact" : "check, no fact") : / is$/.test(text) && /^Look up/.test(text.slice(7)) ? "value" : null;
      if (kind) {
        const row = (promptIds.length + k - 1) * Vocab, z = logits.subarray(row, row + Vocab);
        let m = -Infinity, am = 0; for (let c = 0; c < Vocab; c++) if (z[c] > m) { m = z[c]; am = c; }
        let s = 0; for (let c = 0; c < Vocab; c++) s += Math.exp(z[c] - m);
        kinds[kind].push(Math.exp(z[id] - m) / s); if (am === id) right[kind]++;
      }
      text += piece;
    });
  }
}
const nf = kinds["check, fact"].length, nn = kinds["check, no fact"].length;
console.log(`${dir}: ${N} drills per depth ${depths.join(",")}; prior p(fact) ${(nf / (nf + nn)).toFixed(3)}`);
for (const [k, a] of Object.entries(kinds))
  console.log(`${k.padEnd(15)} n ${String(a.length).padStart(4)}  p(right) ${(a.reduce((x, y) => x + y, 0) / a.length).toFixed(3)}  argmax right ${(right[k] / a.length).toFixed(3)}  loss ${(-a.reduce((x, y) => x + Math.log(y), 0) / a.length).toFixed(3)} nats`);
