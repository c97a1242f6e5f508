// Where the SFT loss sits on the annotated sweep trace (src/tasks/graphli.ts traceLI): mean
// per-token loss of a checkpoint on held-out ground-truth traces, by kind of token.
// args: MODEL_DIR [N] [DEPTHS]
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { scoreTokens } from "../../dist/src/rl/step.js";
import { generate, completionFor } from "../../dist/src/tasks/index.js";
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 16), depths = (depthsS ?? "1,2,4").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const kinds = {};
const add = (k, v) => { (kinds[k] ??= [0, 0]); kinds[k][0] += v; kinds[k][1]++; };
for (const d of depths) {
  const items = Array.from({ length: N }, (_, j) => generate("graphli", { depth: d, seed: 777000 + j, answerable: j % 2 === 0 }));
  const seqs = items.map((i) => ({ promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }));
  const batch = packBatch(seqs, p.padId);
  const { logprob } = await scoreTokens(p.model, batch, 1, 8);
  seqs.forEach((s, b) => {
    let text = "";
    s.completionIds.forEach((id, j) => {
      const lp = logprob[b * batch.T + s.promptIds.length + j - 1];
      const piece = j === s.completionIds.length - 1 ? "<eos>" : p.tokenizer.decode([id]);
      const inThink = text.includes("<think>") && !text.includes("</think>");
      const line = text.slice(text.lastIndexOf("\n") + 1);
      let kind;
      if (!inThink) kind = text.includes("<answer>") && !text.includes("</answer>") ? "answer" : "markup";
      else if (/^(- )?So /.test(line)) kind = "so-line";
      else if (/^(- )?$/.test(line)) kind = "line-start";
      else if (/\($/.test(line) || /\( ?$/.test(line)) kind = "annotation";
      else if (/\)$/.test(line) && !/then [a-z ]+\([a-z?]+\)$/.test(line)) kind = "copy-after-ann";
      else if (/\)$/.test(line)) kind = "decision";
      else if (/, so$/.test(line) || /, so [a-z]+$/.test(line) || /, so [a-z]+ is$/.test(line)) kind = "settle";
      else kind = "copy";
      add(`d${d} ${kind}`, -lp); add(`all ${kind}`, -lp);
      text += piece;
    });
  });
}
for (const [k, [s, n]] of Object.entries(kinds).sort()) console.log(k.padEnd(24), (s / n).toFixed(3), n);
