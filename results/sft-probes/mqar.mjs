// Associative recall in isolation (MQAR-style): can a freshly initialised tiny preset learn to
// look up a value in its context at all? Prompt: "Facts: foam is true, reef is false, ..." (K
// random atoms of the task vocabulary, half of them true); completion: "Look up: reef is false,
// sand, foam is true, ..." (K + K/2 questions drawn with replacement from the facts and K/2 absent
// atoms; an absent atom is written bare; PERM=1: the runs before 2026-12-01, recall.mjs). Atom tokens get no loss (unless ATOMLOSS=1: recall.mjs); the checks (" is" or ",") and values do.
// args: STEPS EVERY LR TAG; env K (facts, default 8), B (default 32), T (threads), INIT, ARCH=llama, ADJ, SEED, KMIN, COPY, MIXCOPY, ATOMLOSS, SHAPE (JSON, e.g. {"numHeads":2,"headDim":64}: the tiny preset reshaped)
import { createBackend } from "../../dist/src/backend/index.js";
import { initModel } from "../../dist/src/model/init.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { AdamW } from "../../dist/src/model/optim.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { supervisedGradient } from "../../dist/src/rl/step.js";
import { saveCheckpoint } from "../../dist/src/model/checkpoint.js";
import { cpSync, rmSync } from "node:fs";
import { reinitAs, mimeticInit } from "./variants.mjs";
import { recallCorpus, recallTask, copyTask, unscored, completionArgmax } from "./recall.mjs";
const [stepsS, everyS, lrS, tag] = process.argv.slice(2);
const steps = +stepsS, every = +everyS, lr = +lrS, K = +(process.env.K ?? 8), B = +(process.env.B ?? 32);
// ADJ=1: facts written "foam true" (value right after its atom) instead of "foam is true"; the
// check and the read are then one token after the atom: true, false, or "," / "." when absent.
const ADJ = !!process.env.ADJ;
// SEED=s: another initialisation and other items (default 0: the runs in README.md).
const SEED = +(process.env.SEED ?? 0);
// PHRASES=1: the tokenizer keeps " is true" and " is false" whole (fitTokenizer phrases), so
// the "is" form's value is the token right after the atom.
const PHRASES = process.env.PHRASES ? [" is true", " is false"] : undefined;
const dir = `runs/mqar-${tag}`;
rmSync(dir, { recursive: true, force: true });
if (process.env.INIT) cpSync(process.env.INIT, dir, { recursive: true }); else await initModel({ preset: "tiny", corpus: recallCorpus, out: dir, seed: 1 + SEED, shape: JSON.parse(process.env.SHAPE ?? "{}"), attentionInit: "random", phrases: PHRASES });
if (process.env.ARCH) await reinitAs(dir, process.env.ARCH, 1 + SEED); // llama or qwen2 (variants.mjs)
if (process.env.MIMETIC) await mimeticInit(dir, process.env.MIMETIC, 1 + SEED); // qk, qkvo or prev (variants.mjs)
const be = await createBackend("cpu", { threads: Number(process.env.T ?? 1) });
const p = await Policy.load(dir, be);
// COPY=n: the induction task instead (recall.mjs copyTask, n atoms; K is then ignored).
const COPY = +(process.env.COPY ?? 0);
const { atoms, item, scored } = COPY ? copyTask(p.tokenizer, COPY) : recallTask(p.tokenizer, K, ADJ);
// KMIN=k: training items have k..K facts (in turn), so the easy ones (one fact: any value token
// is the answer) give attention to values a gradient before it has to pick among several.
// Evaluation stays at K.
const KMIN = +(process.env.KMIN ?? K);
const mixed = COPY ? [item] : Array.from({ length: K - KMIN + 1 }, (_, j) => recallTask(p.tokenizer, KMIN + j, ADJ).item);
// MIXCOPY=n: every other training item is copyTask(n) instead (a dense induction signal next
// to the recall items; evaluation stays on recall).
const MIXCOPY = +(process.env.MIXCOPY ?? 0), copier = MIXCOPY ? copyTask(p.tokenizer, MIXCOPY) : null;
const trainItem = (n) => (copier && n % 2 ? { ...copier.item(n), scored: copier.scored } : { ...mixed[n % mixed.length](n), scored });
console.log("atoms", atoms.length, "K", K, "B", B, "lr", lr);
const opt = new AdamW(p.model, { lr, warmupSteps: 50, schedule: "cosine", totalSteps: steps, minLr: lr * 0.1, maxGradNorm: 1 });
async function evaluate() {
  const acc = {};
  const { seqs, am } = await completionArgmax(p, be, Array.from({ length: 64 }, (_, j) => item(9e8 + j)));
  seqs.forEach((q, b) => scored(q.completionIds).forEach((k, j) => {
    if (k === "atom" || k === "other") return;
    (acc[k] ??= [0, 0])[0] += am(b, j) === q.completionIds[j]; acc[k][1]++;
  }));
  return Object.entries(acc).map(([k, [r, n]]) => `${k} ${(r / n).toFixed(2)}`).join(", ");
}
const t0 = performance.now(); let la = 0;
for (let s = 0; s < steps; s++) {
  const seqs = Array.from({ length: B }, (_, j) => { const d = trainItem(s * B + j + SEED * 1e8); return { promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion), scored: d.scored }; });
  const batch = packBatch(seqs, p.padId);
  seqs.forEach((q, b) => q.scored(q.completionIds).forEach((k, j) => { if (unscored(k)) batch.mask[b * batch.T + q.promptIds.length + j - 1] = 0; }));
  if (s === 0) console.log("item 0:", item(0).prompt, "|", item(0).completion);
  p.model.zeroGrads();
  const loss = await supervisedGradient(p.model, batch, B);
  la = s === 0 ? loss : 0.95 * la + 0.05 * loss;
  await opt.update();
  if ((s + 1) % every === 0 || s + 1 === steps) {
    console.log(`step ${s + 1} loss ${la.toFixed(3)} t ${((performance.now() - t0) / 1000).toFixed(0)}s | argmax right: ${await evaluate()}`);
    await saveCheckpoint(`${dir}/ckpt`, p.model, { tokenizerDir: dir });
  }
}
