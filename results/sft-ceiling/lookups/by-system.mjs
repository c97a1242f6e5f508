// Answerable accuracy of a GraphLA eval split by whether the ground-truth trace solves a system
// (a "with ..." partner look-up) or not. usage: node by-system.mjs TASK N MIN MAX SEED EVAL.json
import { readFileSync } from "node:fs";
import { heldOut } from "../../../dist/src/rl/run.js";
const [task, n, lo, hi, seed, file] = process.argv.slice(2);
const items = new Map(heldOut(task, +n, +lo, +hi, +seed).map((i) => [i.id, i]));
const t = { sys: [0, 0], plain: [0, 0] };
for (const s of JSON.parse(readFileSync(file, "utf8")).samples) {
  if (!s.answerable) continue;
  const k = items.get(s.id).trace.includes(", with ") ? "sys" : "plain";
  t[k][0] += s.correct ? 1 : 0; t[k][1]++;
}
console.log(`depth ${lo}-${hi}: with a system ${t.sys[0]}/${t.sys[1]} right, without ${t.plain[0]}/${t.plain[1]}`);
