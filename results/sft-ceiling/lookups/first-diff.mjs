// For each wrong answerable item of an `anvil eval --samples --json` run, finds the first line where
// the completion departs from the ground-truth trace and classes it:
//   lookup  a price read into a line ("Bacon 7" / "Bacon ?") differs from the ground truth
//   arith   the value is wrong for the line's own expression
//   line    wrote another premise's line (order, a line left out or added, an early end)
//   partner paired a "together" premise with the wrong premise ("with [k] ...")
//   system  the right partner, the system's expression wrong ((s + b)/2 for (s - b)/2)
//   derive  derived a price where the trace does not, or not where it does
//   other   anything else
// Also records the relative position (line index / GT lines) of the first departure.
// usage: node first-diff.mjs EVAL.json TASK N MIN MAX SEED
import { readFileSync } from "node:fs";
import { heldOut } from "../../../dist/src/rl/run.js";
const [file, task, n, lo, hi, seed] = process.argv.slice(2);
const ev = JSON.parse(readFileSync(file, "utf8"));
const gt = new Map(heldOut(task, +n, +lo, +hi, +seed).map((i) => [i.id, i]));
const derived = (l) => l.match(/so [A-Z][a-z]+ = (.+) = (-?\d+)\.$/); // [, expression chain, value]
const tally = { right: 0, wrong: 0, line: 0, lookup: 0, partner: 0, system: 0, arith: 0, derive: 0, other: 0 };
const pos = [];
const ex = [];
for (const s of ev.samples) {
  if (!s.answerable) continue;
  if (s.correct) { tally.right++; continue; }
  tally.wrong++;
  const it = gt.get(s.id);
  const norm = (t) => t.replace(/^<think>\n?/, "").split("\n").map((l) => l.replace(/^- /, ""));
  const g = norm(it.trace), c = norm(s.completion);
  let k = 0;
  while (k < g.length && k < c.length && g[k] === c[k]) k++;
  const gl = g[k] ?? "", cl = c[k] ?? "";
  let kind = "other";
  const head = (l) => l.split(":")[0];
  const reads = (l) => [...l.split(":").slice(1).join(":").split(/, (so|with) /)[0].matchAll(/([A-Z][a-z]+) (\?|\d+)/g)].map((x) => x[0]).join(",");
  const partner = (l) => (l.match(/, with ([^,]*)/) ?? [])[1] ?? "";
  const m = derived(cl);
  if (head(cl) !== head(gl)) kind = "line";            // wrote another line (order, a missing or extra line, early end)
  else if (reads(cl) !== reads(gl)) kind = "lookup";   // read a price wrong
  else if (partner(cl) !== partner(gl)) kind = "partner"; // paired the sum with the wrong equation
  else if (partner(gl) && m && m[1].split(" = ")[0] !== (derived(gl) ?? [])[1]) kind = "system"; // right partner, wrong way round: (s + b)/2 for (s - b)/2
  else if (m && Function(`return (${m[1].split(" = ")[0]})`)() !== +m[2]) kind = "arith";
  else if (!!m !== !!gl.match(/ so /)) kind = "derive"; // derived where it should not, or did not where it should
  tally[kind]++;
  pos.push((k / g.length).toFixed(2));
  if (ex.length < 12) ex.push(`${kind} @${k}/${g.length}\n  GT : ${gl}\n  OUT: ${cl}`);
}
console.log(JSON.stringify(tally));
console.log("first departure at line fraction:", pos.join(" "));
console.log(ex.join("\n"));
