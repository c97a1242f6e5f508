// Where mqar's value reads go right: value-read argmax accuracy by the fact's place in the prompt
// (1st..Kth), by the question's place in the completion, and by whether the completion asked
// the same atom before (then it can copy its own earlier answer). args: CKPT; env K, ADJ
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { recallTask, completionArgmax } from "./recall.mjs";
const [ckpt] = process.argv.slice(2);
const K = +(process.env.K ?? 4);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(ckpt, be);
const { item, scored } = recallTask(p.tokenizer, K, !!process.env.ADJ);
const byFact = Array.from({ length: K }, () => [0, 0]), byAsk = Array.from({ length: Math.ceil(K * 1.5) }, () => [0, 0]), byRepeat = [[0, 0], [0, 0]];
for (let chunk = 0; chunk < 4; chunk++) {
  const held = Array.from({ length: 64 }, (_, j) => item(9e8 + chunk * 64 + j));
  const { seqs, am } = await completionArgmax(p, be, held);
  seqs.forEach((q, b) => {
    const facts = held[b].prompt.match(/[a-z]+ (is )?(true|false)/g).map((f) => f.split(" ")[0]);
    let ask = -1, atom = ""; const seen = new Set();
    scored(q.completionIds).forEach((k, j) => {
      if (k === "atom") { ask++; atom = p.tokenizer.decode([q.completionIds[j]]).trim(); return; }
      if (k !== (process.env.ADJ ? "check fact" : "value")) return; // adjacent form: the value follows the atom
      const ok = am(b, j) === q.completionIds[j], f = facts.indexOf(atom);
      byFact[f][0] += ok; byFact[f][1]++; byAsk[ask][0] += ok; byAsk[ask][1]++;
      const r = +seen.has(atom); byRepeat[r][0] += ok; byRepeat[r][1]++; seen.add(atom);
    });
  });
}
const fmt = (a) => a.map(([r, n]) => (n ? (r / n).toFixed(2) : "-")).join(" ");
console.log(`${ckpt}: value read right by fact place ${fmt(byFact)} | by question place ${fmt(byAsk)} | first ask / asked before ${fmt(byRepeat)}`);
