// The associative-recall task of mqar.mjs (and of torch-replay/dump.mjs, which writes the same
// batches for PyTorch): K random facts over the task's atoms, then every fact and K/2 absent atoms
// asked (drawn with replacement; PERM=1: each once, in a random order).
import { generate, completionFor } from "../../dist/src/tasks/index.js";
import { Rng } from "../../dist/src/util/rng.js";
import { packBatch } from "../../dist/src/rl/batch.js";

const NOT_ATOMS = ["if", "then", "and", "not", "is", "true", "false", "so", "again", "think", "answer", "cannot", "be", "determined", "reason", "inside", "reply", "the", "premises", "do", "determine", "unknown", "question"];
/** The texts the tiny preset's tokenizer is fitted to. */
export const recallCorpus = Array.from({ length: 400 }, (_, j) => { const i = generate("graphli", { depth: 1 + (j % 6), seed: 5e6 + j }); return i.prompt + completionFor(i); });

/** item(seed) -> {prompt, completion}; scored(completion ids) -> per token "atom" (the asked atom)
 * | "check fact" | "check none" | "value" | "other". adj: facts written "foam true".
 * perm (PERM=1; every run before 2026-12-01): ask each fact and absent atom once, in a random
 * order. Then the values left to ask are known from the prompt's count of true and false, and a
 * model that counts gets the last question always and the others often right without looking
 * any atom up (mqar-diag.mjs: right 0.69-0.74 on the first questions, 1.00 on the last); and the
 * values are independent coin flips, so the prompt's majority value alone is right 69% of the
 * time at K = 4. By default the values are balanced (K/2 true) and the questions drawn with
 * replacement, so only a look-up beats chance. */
export function recallTask(tokenizer, K, adj, perm = !!process.env.PERM) {
  const atoms = taskAtoms(tokenizer);
  const fact = ([a, v]) => (adj ? `${a} ${v}` : `${a} is ${v}`);
  function item(seed) {
    const rng = new Rng(seed), pick = pickAtoms(atoms, K + K / 2, rng);
    // Half the facts true, half false (a random one more of either for odd K): otherwise the
    // majority of the prompt's values answers about 69% of the questions at K = 4 unread.
    const vals = perm ? pick.slice(0, K).map(() => (rng.below(2) ? "true" : "false"))
      : shuffle(pick.slice(0, K).map((_, j) => (2 * j < K - 1 || (2 * j === K - 1 && rng.below(2)) ? "true" : "false")), rng);
    const facts = pick.slice(0, K).map((a, j) => [a, vals[j]]), absent = pick.slice(K);
    const asked = [...facts.map(fact), ...absent];
    const ask = perm ? shuffle(asked, rng) : asked.map(() => asked[rng.below(asked.length)]);
    return { prompt: `Facts: ${facts.map(fact).join(", ")}.`, completion: `Look up: ${ask.join(", ")}.` };
  }
  // With the tokenizer's phrases (mqar.mjs PHRASES=1) " is true" is one token: its "check fact"
  // is then the value read too.
  function scored(ids) {
    let text = "";
    return ids.map((id) => {
      const piece = tokenizer.decode([id]);
      const afterAtom = /(: |, )[a-z]+$/.test(text);
      // The fitted tokenizer writes an asked atom with its space (":" " sand"); before 2026-12-01
      // this test looked for ": " / ", " and never matched, so atoms were scored as "other".
      const k = /[:,] ?$/.test(text) && /^ ?[a-z]+$/.test(piece) ? "atom"
        : afterAtom ? (piece === " is" || /^ is (true|false)$/.test(piece) || (adj && /^ (true|false)$/.test(piece)) ? "check fact" : "check none")
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

/** Induction in isolation: the prompt lists n random atoms ("Facts: shade honey brook bog coal."),
 * the completion copies them on from a random one ("Look up: brook bog coal."). Each atom after
 * the first follows from its predecessor's earlier occurrence (match one token, copy the one after
 * it), the circuit a look-up of "x v" needs; the random start keeps a fixed-offset copy from
 * solving it (with fixed offsets, COPYALL=1, a positional head does: mqar-copy8-s0/s1.txt).
 * scored(ids) -> "copy" for those atoms, "atom" for the first (random: no loss), "other" else. */
// values (COPYV=1): each atom followed by a value, half of them true ("shade true honey false
// ..."), so the copy also carries value tokens, as a look-up of "x v" must.
export function copyTask(tokenizer, n, all = !!process.env.COPYALL, values = !!process.env.COPYV) {
  const atoms = taskAtoms(tokenizer);
  function item(seed) {
    const rng = new Rng(seed), pick = pickAtoms(atoms, n, rng);
    const from = all ? 0 : rng.below(n - 1);
    const vals = values ? shuffle(pick.map((_, j) => (j % 2 ? "true" : "false")), rng) : null;
    const words = values ? pick.flatMap((a, j) => [a, vals[j]]) : pick;
    const start = values ? 2 * from : from;
    return { prompt: `Facts: ${words.join(" ")}.`, completion: `Look up: ${words.slice(start).join(" ")}.` };
  }
  function scored(ids) {
    let text = "", seen = 0;
    return ids.map((id) => {
      const piece = tokenizer.decode([id]);
      const atom = /:/.test(text) && /^ [a-z]+$/.test(piece) && !text.endsWith(".");  // values too
      text += piece;
      return atom ? (seen++ > 0 ? "copy" : "atom") : "other";
    });
  }
  return { atoms, item, scored };
}

/** The atoms of the task vocabulary that the tokenizer writes as one token (" foam"). */
function taskAtoms(tokenizer) {
  return [...new Set(recallCorpus.join(" ").match(/\b[a-z]+\b/g))].filter((w) => !NOT_ATOMS.includes(w) && tokenizer.encode(" " + w).length === 1);
}

/** n distinct atoms, drawn in order. */
function pickAtoms(atoms, n, rng) {
  const pick = [];
  while (pick.length < n) { const a = atoms[rng.below(atoms.length)]; if (!pick.includes(a)) pick.push(a); }
  return pick;
}

/** Fisher-Yates in place; returns a. */
function shuffle(a, rng) {
  for (let j = a.length - 1; j > 0; j--) { const k = rng.below(j + 1); [a[j], a[k]] = [a[k], a[j]]; }
  return a;
}

/** The policy's greedy next token at every completion position of items ({prompt, completion}),
 * one forward pass: seqs (their ids) and am(b, j), the argmax predicting completion token j of
 * item b. mqar.mjs's evaluation and mqar-diag.mjs score with it. */
export async function completionArgmax(p, be, items) {
  const seqs = items.map((d) => ({ promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion) }));
  const batch = packBatch(seqs, p.padId);
  const acts = p.model.forward(batch.ids, batch.B, batch.T, { noGrad: true });
  const logits = await be.read(p.model.logits(acts.hidden)); acts.dispose();
  const V = logits.length / (batch.B * batch.T);
  const am = (b, j) => {
    const row = (b * batch.T + seqs[b].promptIds.length + j - 1) * V; let best = 0;
    for (let c = 1; c < V; c++) if (logits[row + c] > logits[row + best]) best = c;
    return best;
  };
  return { seqs, am };
}
