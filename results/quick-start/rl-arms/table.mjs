// Held-out evaluations of each arm, by RL step: overall / answerable / unanswerable, in %.
//   node table.mjs   (from this directory)
import { readFileSync, readdirSync, existsSync } from "node:fs";
for (const arm of readdirSync(".").filter((d) => /^[A-Z]$/.test(d))) {
  if (!existsSync(`${arm}/metrics.jsonl`)) continue;
  const rows = readFileSync(`${arm}/metrics.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.eval_acc !== undefined);
  const pct = (x) => (100 * x).toFixed(1);
  console.log(`${arm}: ${rows.map((r) => `${r.step}: ${pct(r.eval_acc)} / ${pct(r.eval_acc_answerable)} / ${pct(r.eval_acc_unanswerable)}`).join(" | ")}`);
}
