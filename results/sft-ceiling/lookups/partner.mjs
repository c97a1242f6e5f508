// Every "A and B together cost N: ..., with [k] ..." line a GraphLA model writes (greedy, `anvil eval
// --samples --json`, all items), checked against the prompt's premises: does [k] relate A and B by
// a difference ("A costs d more/less than B", either way round), or share one dish with the pair,
// or neither? And is the premise it quotes after [k] the prompt's premise [k] word for word?  usage: node partner.mjs TASK N MIN MAX SEED EVAL.json
import { readFileSync } from "node:fs";
import { heldOut } from "../../../dist/src/rl/run.js";
const [task, n, lo, hi, seed, file] = process.argv.slice(2);
const items = new Map(heldOut(task, +n, +lo, +hi, +seed).map((i) => [i.id, i]));
const t = { lines: 0, right: 0, oneDish: 0, neither: 0, quotedAsLabelled: 0 };
for (const s of JSON.parse(readFileSync(file, "utf8")).samples) {
  const labelled = new Map(
    items.get(s.id).prompt.split("\n").flatMap((l) => {
      const m = l.match(/^- \[(\d+)\] (.*)$/);
      return m ? [[m[1], m[2]]] : [];
    }),
  );
  for (const m of s.completion.matchAll(/\[\d+\] ([A-Z][a-z]+) and ([A-Z][a-z]+) together cost \d+: [^\n]*?, with \[(\d+)\] ([^,\n]*)/g)) {
    t.lines++;
    const quoted = labelled.get(m[3]) ?? "";
    if (quoted === `${m[4]}.`) t.quotedAsLabelled++;
    const d = quoted.match(/^([A-Z][a-z]+) costs \d+ (?:more|less) than ([A-Z][a-z]+)\.$/);
    if (d && new Set([d[1], d[2], m[1], m[2]]).size === 2) t.right++;
    else if ([m[1], m[2]].some((x) => new RegExp(`\\b${x}\\b`).test(quoted))) t.oneDish++;
    else t.neither++;
  }
}
console.log(`depth ${lo}-${hi}: ${t.lines} system lines written; the quoted partner relates the pair in ${t.right}, shares one dish with it in ${t.oneDish}, neither in ${t.neither}; quoted word for word as labelled in ${t.quotedAsLabelled}`);
