// Every "A and B together cost N: ..., with <quote>" line a GraphLA model writes in the unlabelled
// form (greedy, `anvil eval --samples --json`, all items), checked against the prompt: is the quote
// one of its premises word for word, and is it the premise linking A and B? When it is not, does it
// start "A costs", as the trace's does (the subject copied right, what follows not)?
// usage: node quotes.mjs TASK N MIN MAX SEED EVAL.json
import { readFileSync } from "node:fs";
import { heldOut } from "../../../dist/src/rl/run.js";
const [task, n, lo, hi, seed, file] = process.argv.slice(2);
const items = new Map(heldOut(task, +n, +lo, +hi, +seed).map((i) => [i.id, i]));
const t = { lines: 0, aPremise: 0, theLink: 0, otherStartsRight: 0 };
for (const s of JSON.parse(readFileSync(file, "utf8")).samples) {
  const premises = new Set(items.get(s.id).prompt.split("\n").flatMap((l) => (l.startsWith("- ") ? [l.replace(/^- (\[\d+\] )?/, "").slice(0, -1)] : [])));
  for (const m of s.completion.matchAll(/\] ([A-Z][a-z]+) and ([A-Z][a-z]+) together cost \d+: [^\n]*?, with ([A-Z][^,\n]*)/g)) {
    t.lines++;
    const link = [...premises].find((p) => new RegExp(`^${m[1]} costs \\d+ (more|less) than ${m[2]}$`).test(p));
    if (premises.has(m[3])) t.aPremise++;
    if (m[3] === link) t.theLink++;
    else if (m[3].startsWith(`${m[1]} costs `)) t.otherStartsRight++;
  }
}
console.log(`depth ${lo}-${hi}: ${t.lines} system lines; the quote is a premise in ${t.aPremise}, the pair's link in ${t.theLink}; of the others, ${t.otherStartsRight} start "A costs"`);
