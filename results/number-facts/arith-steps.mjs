// Counts miscomputed steps in a GraphLA model's greedy completions (`anvil eval --samples --json`):
// each "so X = a = b = v" chain checked link by link; a wrong answerable item is classed by its
// first miscomputed step (one operation or two), or "none" when every step it wrote is right.
// usage: node arith-steps.mjs EVAL.json
//    or: node arith-steps.mjs --shapes EVAL.json: every "so X = EXPR = R." a completion writes (all
//        items), counted by the expression's shape ("N + N"), with how many are wrong, then each wrong one
import { readFileSync } from "node:fs";
const shapes = process.argv[2] === "--shapes";
const ev = JSON.parse(readFileSync(process.argv[shapes ? 3 : 2], "utf8"));
const ops = (e) => (e.match(/ [-+] |\*|\//g) ?? []).length;
const val = (e) => { try { return Function(`return (${e})`)(); } catch { return NaN; } };
if (shapes) {
  const by = new Map(), wrong = [];
  for (const s of ev.samples)
    for (const m of s.completion.matchAll(/= ([-+*/() \d]+) = (-?\d+)\./g)) {
      const expr = m[1].trim(), want = val(expr);
      if (Number.isNaN(want)) continue; // an unfinished expression
      const r = by.get(expr.replace(/\d+/g, "N")) ?? { n: 0, bad: 0 };
      by.set(expr.replace(/\d+/g, "N"), r);
      r.n++;
      if (want !== +m[2]) r.bad++, wrong.push(`${expr} = ${m[2]} (is ${want})`);
    }
  console.log("shape            written  wrong");
  for (const [k, v] of [...by].sort((a, b) => b[1].n - a[1].n)) console.log(`${k.padEnd(16)} ${String(v.n).padStart(7)} ${String(v.bad).padStart(6)}`);
  console.log(`${"all".padEnd(16)} ${String([...by.values()].reduce((a, v) => a + v.n, 0)).padStart(7)} ${String(wrong.length).padStart(6)}`);
  console.log(wrong.join("\n"));
  process.exit(0);
}
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
