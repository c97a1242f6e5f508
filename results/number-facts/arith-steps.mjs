// Counts miscomputed steps in a GraphLA model's greedy completions (`anvil eval --samples --json`):
// each "so X = a = b = v" chain checked link by link; a wrong answerable item is classed by its
// first miscomputed step (one operation or two), or "none" when every step it wrote is right.
// usage: node arith-steps.mjs EVAL.json
import { readFileSync } from "node:fs";
const ev = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ops = (e) => (e.match(/ [-+] |\*|\//g) ?? []).length;
const val = (e) => { try { return Function(`return (${e})`)(); } catch { return NaN; } };
const tally = { wrong: 0, arith1: 0, arith2: 0, none: 0, right: 0, lineErr1: 0, lineErr2: 0, steps1: 0, steps2: 0 };
for (const s of ev.samples) {
  if (!s.answerable) continue;
  let first = null;
  for (const m of s.completion.matchAll(/so [A-Z][a-z]+ = ([-+*/()= \d]+?) = (-?\d+)\./g)) {
    const chain = [...m[1].split(" = "), m[2]];
    for (let k = 0; k + 1 < chain.length; k++) {
      const o = ops(chain[k]);
      tally[o >= 2 ? "steps2" : "steps1"]++;
      if (val(chain[k]) !== val(chain[k + 1])) { tally[o >= 2 ? "lineErr2" : "lineErr1"]++; first ??= o; }
    }
  }
  if (s.correct) { tally.right++; continue; }
  tally.wrong++;
  tally[first === null ? "none" : first >= 2 ? "arith2" : "arith1"]++;
}
console.log(JSON.stringify(tally));
