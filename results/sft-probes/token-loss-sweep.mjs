// Where the SFT loss sits on the sweep trace (src/tasks/graphli.ts traceLI: "If a and not b then
// c: a true, b ?, c false, so b is true."): mean per-token loss of a checkpoint on held-out
// ground-truth traces, by kind of token, and the value look-ups by value and earlier annotation.
// args: MODEL_DIR [N] [DEPTHS]; env TRACE=usweep for that variant of sft-probe.mjs, TASK=graphla
import { createBackend } from "../../dist/src/backend/index.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { scoreTokens } from "../../dist/src/rl/step.js";
import { generate, completionFor } from "../../dist/src/tasks/index.js";
import { variantInstance } from "./variants.mjs";
// TRACE=usweep / isweep / fisweep: the variants of variants.mjs.
// TASK=graphla: GraphLA's sweep trace ("Tart costs 3 less than three times Cookie: Tart ?, Cookie 10, so Tart = 3*10 - 3 = 27.").
const TASK = process.env.TASK ?? "graphli";
const inst = (o) => variantInstance(TASK, process.env.TRACE, o) ?? generate(TASK, o);
const ISWEEP = ["isweep", "fisweep", "gisweep", "csweep"].includes(process.env.TRACE);
const WSWEEP = process.env.TRACE === "wsweep"; // every atom "x is v", v true / false / unknown
function laKind(body, piece) {
  if (/^So /.test(body)) return "so-line";
  if (body === "") return "premise-first";
  if (!body.includes(":")) return "premise-copy";
  if (["so", "with"].includes(piece.trim()) && /,$/.test(body)) return "decision";
  if (/, so /.test(body)) return /, so [^=]*=[^=]*= ?-?[\d/]*$/.test(body) ? "settle-value" : "settle-expr";
  if (/, with /.test(body)) return "with-copy";
  if (/(:|,)$/.test(body)) return "pair-dish";
  if (/[:,] [A-Z][a-z]+( -?[\d/]*)?$/.test(body)) return "pair-value";
  return "other";
}
const [dir, nS, depthsS] = process.argv.slice(2);
const N = +(nS ?? 16), depths = (depthsS ?? "1,2,4").split(",").map(Number);
const be = await createBackend("cpu", { threads: 1 });
const p = await Policy.load(dir, be);
const kinds = {};
const add = (k, v) => { (kinds[k] ??= [0, 0]); kinds[k][0] += v; kinds[k][1]++; };
for (const d of depths) {
  const items = Array.from({ length: N }, (_, j) => inst({ depth: d, seed: 777000 + j, answerable: j % 2 === 0 }));
  const seqs = items.map((i) => ({ promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }));
  const batch = packBatch(seqs, p.padId);
  const { logprob } = await scoreTokens(p.model, batch, 1, 8);
  seqs.forEach((s, b) => {
    let text = "";
    s.completionIds.forEach((id, j) => {
      const lp = logprob[b * batch.T + s.promptIds.length + j - 1];
      const piece = j === s.completionIds.length - 1 ? "<eos>" : p.tokenizer.decode([id]);
      const inThink = text.includes("<think>") && !text.includes("</think>");
      const line = text.slice(text.lastIndexOf("\n") + 1);
      let kind;
      const body = line.replace(/^- /, "").replace(/^\[\d+\] /, ""); // TRACE=rsweep: a rule line's label
      if (!inThink) kind = text.includes("<answer>") && !text.includes("</answer>") ? "answer" : "markup";
      else if (TASK === "graphla") kind = laKind(body, piece);
      else if (/^So /.test(body)) kind = "so-line";
      else if (process.env.TRACE === "fisweep" && /^[a-z]+( is( (true|false)\.?)?)?$/.test(body) && !/^If/.test(body)) kind = body === "" ? "line-start" : /^[a-z]+$/.test(body) ? "fact-line is" : "fact-line value";
      else if (/^(- )?$/.test(line) || body === "") kind = "line-start";
      else if (/, so( [A-Za-z]+( is)?)?$/.test(body)) kind = "settle";
      else if (!body.includes(":")) kind = body === "If" ? "rule-first-atom" : "rule-copy";
      else if (/(:|,)$/.test(body)) kind = "pair-atom";
      else if (WSWEEP && /[:,] [a-z]+$/.test(body)) kind = "pair-is";
      else if (WSWEEP && /[:,] [a-z]+ is$/.test(body)) kind = "pair-value";
      else if (ISWEEP && /[:,] [a-z]+$/.test(body)) kind = piece.trim() === "is" ? "known? yes" : "known? no";
      else if (ISWEEP && /[:,] [a-z]+ is$/.test(body)) kind = "pair-value";
      else if (/[:,] [a-z]+$/.test(body)) kind = "pair-value";
      else kind = "decision";
      add(`d${d} ${kind}`, -lp); add(`all ${kind}`, -lp);
      if (kind === "pair-value" && TASK === "graphli") {
        // Value look-ups by the right value and by where it can be read: the same atom's last
        // annotation earlier in the trace ("none": this is the atom's first annotation).
        const atom = body.match(/([a-z]+)(?: is)?$/)[1];
        const prev = WSWEEP
          ? (new RegExp(`so ${atom} is`, "i").test(text) ? "trace" : "prompt") // settles: capitalised, or LOWER=1
          : ISWEEP
          ? ([...text.matchAll(new RegExp(`(?:[:,]|so) ${atom} is (true|false)`, "gi"))].length ? "trace" : "prompt")
          : ([...text.matchAll(new RegExp(`(?:[:,]|so) ${atom} (true|false|\\?)`, "g"))].at(-1)?.[1] ?? "none");
        add(`value ${piece.trim().replace(/[,.]$/, "")} after ${prev}`, -lp);
      }
      if (kind.startsWith("known?")) {
        // isweep's existence check by where the value can be read: a fact of the prompt, a value
        // written earlier in the trace, or nowhere (the atom is unknown so far)
        const atom = body.match(/([a-z]+)$/)[1];
        // (CAP=1 variants write facts and settles capitalised: match the atom in either case)
        const src = items[b].prompt.toLowerCase().includes(`- ${atom} is `) ? "prompt fact" : new RegExp(`(?:[:,]|so) ${atom} is (true|false)`, "i").test(text) ? "trace" : "nowhere";
        add(`${kind} from ${src}`, -lp);
      }
      text += piece;
    });
  });
}
for (const [k, [s, n]] of Object.entries(kinds).sort()) console.log(k.padEnd(24), (s / n).toFixed(3), n);
