// The existence check in isolation (issue 9): can the tiny preset learn "is atom x a fact of the
// prompt?" The prompt is a real GraphLI prompt; the completion lists every atom of the premises
// in a random order, each followed by " is <value>" when the prompt states it as a fact and bare
// otherwise ("Check: wax, smoke is true, twig."). Reports the loss of the token after each atom
// (" is" = known, "," / "." = not) on held-out items every EVERY steps.
// args: STEPS EVERY LR TAG ; env ARCH=llama, LAYERS=n, HEADDIM=d, QKGAIN=g, T=threads, B=batch, CAP=1, MODE=values, INIT=dir
import { createBackend } from "../../dist/src/backend/index.js";
import { initModel, initParameters } from "../../dist/src/model/init.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { AdamW } from "../../dist/src/model/optim.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { supervisedGradient, scoreTokens } from "../../dist/src/rl/step.js";
import { graphliProblem, completionFor } from "../../dist/src/tasks/index.js";
import { atomsOf } from "../../dist/src/tasks/solve-li.js";
import { parseConfig, configToJson } from "../../dist/src/model/config.js";
import { saveSafetensors, SINGLE_FILE } from "../../dist/src/model/safetensors.js";
import { Rng } from "../../dist/src/util/rng.js";
import { reinitAs } from "../sft-probes/variants.mjs";
import { cpSync, rmSync, readFileSync, writeFileSync } from "node:fs";

const [stepsS, everyS, lrS, tag] = process.argv.slice(2);
const steps = +stepsS, every = +everyS, lr = +lrS, B = +(process.env.B ?? 16);
function item(seed) {
  const pr = graphliProblem({ depth: 1 + (seed % 2), seed });
  const facts = new Map(pr.premises.filter((p) => p.kind === "fact").map((p) => [p.atom, p.value]));
  const atoms = [...new Set(pr.premises.flatMap((p) => atomsOf(p)))];
  const rng = new Rng(seed);
  for (let i = atoms.length - 1; i > 0; i--) { const j = Math.floor(rng.uniform() * (i + 1)); [atoms[i], atoms[j]] = [atoms[j], atoms[i]]; }
  // MODE=values (the positive control): only the facts' atoms are listed, each with its value, so
  // the scored token is the value read after "x is", a look-up that always has its match.
  const listed = process.env.MODE === "values" ? atoms.filter((a) => facts.has(a)) : atoms;
  const trace = `Check: ${listed.map((a) => facts.has(a) ? `${a} is ${facts.get(a)}` : a).join(", ")}.`;
  // CAP=1: facts start with a capital, as English sentences do ("- Smoke is true."): the fact's
  // atom is then its own token, and the check a one-layer match instead of a two-token pattern.
  const prompt = process.env.CAP ? pr.instance.prompt.replace(/^- ([a-z])([a-z]*) is (true|false)\.$/gm, (_, c, r, v) => `- ${c.toUpperCase()}${r} is ${v}.`) : pr.instance.prompt;
  return { ...pr.instance, prompt, trace };
}
const dir = `runs/echeck-${tag}`;
rmSync(dir, { recursive: true, force: true });
const corpus = Array.from({ length: 400 }, (_, j) => { const i = item(5e6 + j); return i.prompt + completionFor(i); });
// LAYERS=n, HEADDIM=d: the tiny preset reshaped (its heads are 32 wide; Qwen3's are 128).
const shape = { ...(process.env.LAYERS ? { numLayers: +process.env.LAYERS } : {}), ...(process.env.HEADDIM ? { headDim: +process.env.HEADDIM } : {}) };
// INIT=dir: start from that checkpoint (with its tokenizer), e.g. one that learned the full
// trace's copies and look-ups, instead of a fresh model.
if (process.env.INIT) cpSync(process.env.INIT, dir, { recursive: true });
else await initModel({ preset: "tiny", corpus, out: dir, seed: 1, shape, attentionInit: "random" });
if (process.env.ARCH === "llama") await reinitAs(dir);
const be = await createBackend("cpu", { threads: Number(process.env.T ?? 1) });
const p = await Policy.load(dir, be);
const model = p.model;
// QKGAIN=g: q/k-norm gains start at g instead of 1. With q/k-norm an attention logit is at most
// sqrt(headDim) g_q g_k: 5.7 for the preset's 32-wide heads at g = 1, about ln(300), so one
// match among a few hundred positions cannot take most of the weight until the gains grow.
if (process.env.QKGAIN) for (const [name, t] of model.params) if (/[qk]_norm\.weight$/.test(name)) be.fill(t, +process.env.QKGAIN);
console.log("echeck", tag, "arch", process.env.ARCH ?? "qwen3", "layers", model.config.numLayers, "headDim", model.config.headDim, "cap", !!process.env.CAP, "qkgain", process.env.QKGAIN ?? 1, "init", process.env.INIT ?? "fresh", "lr", lr, "B", B);
const opt = new AdamW(model, { lr, warmupSteps: 50, schedule: "cosine", totalSteps: steps, minLr: lr * 0.1, maxGradNorm: 1 });
const held = Array.from({ length: 32 }, (_, j) => item(999000 + j));
const heldSeqs = held.map((i) => ({ promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }));
async function checkLoss() {
  const batch = packBatch(heldSeqs, p.padId);
  const { logprob } = await scoreTokens(model, batch, 1, 8);
  const acc = { yes: [0, 0, 0], no: [0, 0, 0] };
  heldSeqs.forEach((s, b) => {
    let text = "";
    s.completionIds.forEach((id, j) => {
      const piece = p.tokenizer.decode([id]);
      if (process.env.MODE === "values" && /Check:( [a-z]+ is (true|false),)* [a-z]+ is$/.test(text.slice(Math.max(0, text.indexOf("Check:"))))) {
        const lp = logprob[b * batch.T + s.promptIds.length + j - 1];
        const k = piece.trim() === "true" ? "yes" : "no";
        acc[k][0] += -lp; acc[k][1]++; if (-lp < Math.log(2)) acc[k][2]++;
      } else if (process.env.MODE !== "values" && /Check: .*?(^|[:,] )[a-z]+$/.test(text) && /Check:( [a-z]+( is (true|false))?,)* [a-z]+$/.test(text.slice(text.indexOf("Check:")))) {
        const lp = logprob[b * batch.T + s.promptIds.length + j - 1];
        const k = piece.trim() === "is" ? "yes" : "no";
        acc[k][0] += -lp; acc[k][1]++; if (-lp < Math.log(2)) acc[k][2]++;
      }
      text += piece;
    });
  });
  if (process.env.MODE === "values") return `value read: true ${(acc.yes[0] / acc.yes[1]).toFixed(3)} nats (${acc.yes[1]}, right ${(100 * acc.yes[2] / acc.yes[1]).toFixed(0)}%) false ${(acc.no[0] / acc.no[1]).toFixed(3)} (${acc.no[1]}, right ${(100 * acc.no[2] / acc.no[1]).toFixed(0)}%)`;
  return `known? yes ${(acc.yes[0] / acc.yes[1]).toFixed(3)} nats (${acc.yes[1]}, right ${(100 * acc.yes[2] / acc.yes[1]).toFixed(0)}%) no ${(acc.no[0] / acc.no[1]).toFixed(3)} (${acc.no[1]}, right ${(100 * acc.no[2] / acc.no[1]).toFixed(0)}%)`;
}
const t0 = performance.now(); let la = 0;
for (let s = 0; s < steps; s++) {
  const seqs = Array.from({ length: B }, (_, j) => item(1e6 + s * B + j)).map((i) => ({ promptIds: p.encodePrompt(i.prompt), completionIds: p.encodeCompletion(completionFor(i)) }));
  const batch = packBatch(seqs, p.padId);
  model.zeroGrads();
  const loss = await supervisedGradient(model, batch, B);
  la = s === 0 ? loss : 0.95 * la + 0.05 * loss;
  await opt.update();
  if ((s + 1) % every === 0 || s + 1 === steps) console.log(`step ${s + 1} loss ${la.toFixed(3)} t ${((performance.now() - t0) / 1000).toFixed(0)}s | ${await checkLoss()}`);
}
