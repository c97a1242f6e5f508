// Where a GraphLA checkpoint goes wrong on the committed trace (numbered relations): teacher-forced
// argmax accuracy of each ground-truth trace token, by what the token is (the label, the relation
// copy, a dish's price read, the expression, the result of the arithmetic, the system's partner),
// and the share of items whose trace it gets right at every token of each kind.
// args: MODEL_DIR [N] [DEPTHS]
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { completionFor, generate } from "../../dist/src/tasks/index.js";
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 32), depths = (depthsS ?? "1,2").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);

const NOTE = /([A-Z][a-z]+) (\?|-?\d+(?:\/\d+)?)/g;
const LINE = /^- (\[\d+\]) ([^:]+): ([^\n]*?)(?:, with (\[\d+\]) ([^,]+))?(?:, so ([A-Z][a-z]+) = ([-+*/() \d]+) = (-?\d+(?:\/\d+)?))?\.$/d;

/** Character class of every completion character: which part of its trace line it belongs to. */
function classes(completion) {
  const cls = new Array(completion.length).fill("other");
  const mark = (from, to, c) => { for (let i = from; i < to; i++) cls[i] = c; };
  let at = completion.indexOf("<think>") + "<think>".length;
  for (const line of completion.slice(at, completion.indexOf("</think>")).split("\n")) {
    const m = line.match(LINE);
    if (line.startsWith("- So ")) mark(at, at + line.length, "final line");
    if (m) {
      const [, lab, prem, notes, wLab, wPrem, soDish, expr, result] = m.indices;
      mark(at + lab[0], at + lab[1], "label");
      mark(at + prem[0], at + prem[1], "relation copy");
      for (const n of m[3].matchAll(NOTE)) {
        const o = at + notes[0] + n.index;
        mark(o, o + n[1].length, "note dish");
        mark(o + n[1].length + 1, o + n[0].length, n[2] === "?" ? "note ?" : "price read");
      }
      if (wLab) mark(at + wLab[0], at + wLab[1], "partner label"), mark(at + wPrem[0], at + wPrem[1], "partner copy");
      if (soDish) {
        mark(at + soDish[0], at + soDish[1], "settled dish"), mark(at + expr[0], at + expr[1], "expression");
        // With BREAKDOWN=1, results by the expression's operators and the digit's place.
        const ops = m[7].replace(/[\d ()]/g, "") || "copy";
        for (let i = result[0]; i < result[1]; i++) cls[at + i] = process.env.BREAKDOWN ? `result ${ops} digit ${i - result[0] + 1}/${result[1] - result[0]}` : "result";
      }
    }
    at += line.length + 1;
  }
  const a = completion.indexOf("<answer>") + "<answer>".length;
  mark(a, completion.indexOf("</answer>"), "answer");
  return cls;
}

const tally = {};
const itemsRight = {};
const itemsWith = {};
let items = 0;
for (const d of depths)
  for (let j = 0; j < N; j++) {
    const inst = generate("graphla", { depth: d, seed: 778000 + j, answerable: j % 2 === 0 });
    const completion = completionFor(inst);
    const promptIds = p.encodePrompt(inst.prompt), completionIds = p.encodeCompletion(completion);
    const batch = packBatch([{ promptIds, completionIds }], p.padId);
    const acts = p.model.forward(batch.ids, 1, batch.T, { noGrad: true });
    const logits = await be.read(p.model.logits(acts.hidden));
    acts.dispose();
    const V = logits.length / batch.T;
    const cls = classes(completion);
    const wrongKinds = new Set();
    const kinds = new Set();
    let off = 0;
    completionIds.forEach((id, k) => {
      const piece = p.tokenizer.decode([id]);
      // A token's kind: the kind of its first non-space character.
      let c = off;
      while (c < off + piece.length - 1 && piece[c - off] === " ") c++;
      let kind = cls[c] ?? "other"; if (kind === "result" && process.env.POSBIN) { const P = promptIds.length + k; kind = `result d${d} pos ${P < 300 ? "<300" : P < 600 ? "300-600" : P < 900 ? "600-900" : "900+"}`; }
      off += piece.length;
      const r = (promptIds.length + k - 1) * V;
      let a = 0;
      for (let v = 1; v < V; v++) if (logits[r + v] > logits[r + a]) a = v;
      (tally[kind] ??= [0, 0])[1]++;
      kinds.add(kind);
      if (a === id) tally[kind][0]++;
      else wrongKinds.add(kind);
    });
    items++;
    for (const kind of kinds) {
      itemsWith[kind] = (itemsWith[kind] ?? 0) + 1;
      if (!wrongKinds.has(kind)) itemsRight[kind] = (itemsRight[kind] ?? 0) + 1;
    }
  }
console.log(`${dir}: ${items} items at depths ${depths.join(",")}, teacher-forced argmax`);
console.log("kind            tokens  right   of the items with such tokens, the share with all of them right");
for (const [kind, [r, n]] of Object.entries(tally).sort((a, b) => a[1][0] / a[1][1] - b[1][0] / b[1][1]))
  console.log(`${kind.padEnd(15)} ${String(n).padStart(6)}  ${(r / n).toFixed(3)}   ${((itemsRight[kind] ?? 0) / itemsWith[kind]).toFixed(2)} of ${itemsWith[kind]}`);
be.dispose?.();
