// Where mqar's value reads go right: value-read argmax accuracy by the fact's place in the prompt
// (1st..Kth), by the question's place in the completion, and by whether the completion asked
// the same atom before (then it can copy its own earlier answer). args: CKPT; env K, ADJ
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { recallTask } from "./recall.mjs";
const [ckpt] = process.argv.slice(2);
const K = +(process.env.K ?? 4);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(ckpt, be);
const { item, scored } = recallTask(p.tokenizer, K, !!process.env.ADJ);
const byFact = Array.from({ length: K }, () => [0, 0]), byAsk = Array.from({ length: Math.ceil(K * 1.5) }, () => [0, 0]), byRepeat = [[0, 0], [0, 0]];
for (let chunk = 0; chunk < 4; chunk++) {
  const held = Array.from({ length: 64 }, (_, j) => item(9e8 + chunk * 64 + j));
  const seqs = held.map((d) => ({ promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion) }));
  const batch = packBatch(seqs, p.padId);
  const acts = p.model.forward(batch.ids, batch.B, batch.T, { noGrad: true });
  const logits = await be.read(p.model.logits(acts.hidden)); acts.dispose();
  const Vc = logits.length / (batch.B * batch.T);
  seqs.forEach((q, b) => {
    const facts = held[b].prompt.match(/[a-z]+ (is )?(true|false)/g).map((f) => f.split(" ")[0]);
    let ask = -1, atom = ""; const seen = new Set();
    scored(q.completionIds).forEach((k, j) => {
      if (k === "atom") { ask++; atom = p.tokenizer.decode([q.completionIds[j]]).trim(); return; }
      if (k !== (process.env.ADJ ? "check fact" : "value")) return; // adjacent form: the value follows the atom
      const row = (b * batch.T + q.promptIds.length + j - 1) * Vc; let am = 0;
      for (let c = 1; c < Vc; c++) if (logits[row + c] > logits[row + am]) am = c;
      const ok = am === q.completionIds[j], f = facts.indexOf(atom);
      byFact[f][0] += ok; byFact[f][1]++; byAsk[ask][0] += ok; byAsk[ask][1]++;
      const r = +seen.has(atom); byRepeat[r][0] += ok; byRepeat[r][1]++; seen.add(atom);
    });
  });
}
const fmt = (a) => a.map(([r, n]) => (n ? (r / n).toFixed(2) : "-")).join(" ");
console.log(`${ckpt}: value read right by fact place ${fmt(byFact)} | by question place ${fmt(byAsk)} | first ask / asked before ${fmt(byRepeat)}`);
