// The computations a GraphLA model wrote in its free-running completions ("so X = EXPR = R."),
// counted by the expression's shape, with how many have R != EXPR, then each wrong one.
// usage: node arith.mjs EVAL.json... (`anvil eval ... --samples --json` output)
import { readFileSync } from "node:fs";

const byShape = new Map();
const wrong = [];
for (const f of process.argv.slice(2)) {
  for (const s of JSON.parse(readFileSync(f, "utf8")).samples) {
    for (const m of s.completion.matchAll(/= ([-+*/() \d]+) = (-?\d+)\./g)) {
      const expr = m[1].trim();
      let want;
      try {
        want = Function(`return (${expr});`)(); // digits, + - * / and brackets only (the regex)
      } catch {
        continue; // an unfinished expression
      }
      const shape = expr.replace(/\d+/g, "N");
      const r = byShape.get(shape) ?? { n: 0, bad: 0 };
      r.n++;
      if (want !== +m[2]) {
        r.bad++;
        wrong.push(`${expr} = ${m[2]} (is ${want})`);
      }
      byShape.set(shape, r);
    }
  }
}
console.log("shape            written  wrong");
for (const [k, v] of [...byShape].sort((a, b) => b[1].n - a[1].n)) console.log(`${k.padEnd(16)} ${String(v.n).padStart(7)} ${String(v.bad).padStart(6)}`);
const total = [...byShape.values()].reduce((a, v) => a + v.n, 0);
console.log(`${"all".padEnd(16)} ${String(total).padStart(7)} ${String(wrong.length).padStart(6)}`);
console.log(wrong.join("\n"));
