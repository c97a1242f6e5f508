// The associative-recall task of mqar.mjs (and of torch-replay/dump.mjs, which writes the same
// batches for PyTorch): K random facts over the task's atoms, then every fact and K/2 absent atoms
// asked in a random order.
import { generate, completionFor } from "../../dist/src/tasks/index.js";
import { Rng } from "../../dist/src/util/rng.js";

const NOT_ATOMS = ["if", "then", "and", "not", "is", "true", "false", "so", "again", "think", "answer", "cannot", "be", "determined", "reason", "inside", "reply", "the", "premises", "do", "determine", "unknown", "question"];
/** The texts the tiny preset's tokenizer is fitted to. */
export const recallCorpus = Array.from({ length: 400 }, (_, j) => { const i = generate("graphli", { depth: 1 + (j % 6), seed: 5e6 + j }); return i.prompt + completionFor(i); });

/** item(seed) -> {prompt, completion}; scored(completion ids) -> per token "atom" (the asked atom)
 * | "check fact" | "check none" | "value" | "other". adj: facts written "foam true". */
export function recallTask(tokenizer, K, adj) {
  const atoms = [...new Set(recallCorpus.join(" ").match(/\b[a-z]+\b/g))].filter((w) => !NOT_ATOMS.includes(w) && tokenizer.encode(" " + w).length === 1);
  const fact = ([a, v]) => (adj ? `${a} ${v}` : `${a} is ${v}`);
  function item(seed) {
    const rng = new Rng(seed), pick = [];
    while (pick.length < K + K / 2) { const a = atoms[rng.below(atoms.length)]; if (!pick.includes(a)) pick.push(a); }
    const facts = pick.slice(0, K).map((a) => [a, rng.below(2) ? "true" : "false"]), absent = pick.slice(K);
    const ask = [...facts.map(fact), ...absent];
    for (let j = ask.length - 1; j > 0; j--) { const k = rng.below(j + 1); [ask[j], ask[k]] = [ask[k], ask[j]]; }
    return { prompt: `Facts: ${facts.map(fact).join(", ")}.`, completion: `Look up: ${ask.join(", ")}.` };
  }
  function scored(ids) {
    let text = "";
    return ids.map((id) => {
      const piece = tokenizer.decode([id]);
      const afterAtom = /(: |, )[a-z]+$/.test(text);
      // The fitted tokenizer writes an asked atom with its space (":" " sand"); before 2026-12-01
      // this test looked for ": " / ", " and never matched, so atoms were scored as "other".
      const k = /[:,] ?$/.test(text) && /^ ?[a-z]+$/.test(piece) ? "atom"
        : afterAtom ? (piece === " is" || (adj && /^ (true|false)$/.test(piece)) ? "check fact" : "check none")
        : / is$/.test(text) ? "value" : "other";
      text += piece;
      return k;
    });
  }
  return { atoms, item, scored };
}

/** Whether a token of kind k gets no loss: the asked atoms (random for the absent ones), unless
 * ATOMLOSS=1, which scores them as every run before 2026-12-01 did (the bug noted in scored). */
export function unscored(k) {
  return k === "atom" && !process.env.ATOMLOSS;
}
