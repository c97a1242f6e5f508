// SFT learnability with trace variants. args: task steps every lr tag ; env TRACE (v2, orig, isweep, jsweep, rsweep, ...), MIMETIC, PHRASES (the tokenizer keeps " is true" / " is false" whole), LABELS (and "[1] If" ... "[60] If"), DMIN, DMAX, B, N (0: no greedy evaluation), EVD, ROPE, INIT, SAVE, SAVEALL (a checkpoint per evaluation), AUX (look-up drills per batch), SUB, CAP, LOWER, KW, QKGAIN, QKSCALE, ARCH, WIDTH, LAYERS, T
import { createBackend } from "../../dist/src/backend/index.js";
import { initModel } from "../../dist/src/model/init.js";
import { Policy } from "../../dist/src/rl/policy.js";
import { AdamW } from "../../dist/src/model/optim.js";
import { packBatch } from "../../dist/src/rl/batch.js";
import { supervisedGradient } from "../../dist/src/rl/step.js";
import { evaluate } from "../../dist/src/rl/eval.js";
import { generate, graphliProblem, completionFor } from "../../dist/src/tasks/index.js";
import { sentenceLI } from "../../dist/src/tasks/graphli.js";
import { atomsOf, clauseOf } from "../../dist/src/tasks/solve-li.js";
import { cpSync, existsSync, rmSync, readFileSync, writeFileSync } from "node:fs";
import { parseConfig, configToJson } from "../../dist/src/model/config.js";
import { initParameters } from "../../dist/src/model/init.js";
import { saveSafetensors, SINGLE_FILE } from "../../dist/src/model/safetensors.js";
import { Rng } from "../../dist/src/util/rng.js";
import { saveCheckpoint } from "../../dist/src/model/checkpoint.js";
import { variantInstance, reinitAs, lookupDrill, mimeticInit, labelPhrases } from "./variants.mjs";
const [task, stepsS, everyS, lrS, tag] = process.argv.slice(2);
const steps = +stepsS, every = +everyS, lr = +lrS;
const TRACE = process.env.TRACE ?? "orig", DMIN = +(process.env.DMIN ?? 1), DMAX = +(process.env.DMAX ?? 4), B = +(process.env.B ?? 16), N = +(process.env.N ?? 48);

// post-order DFS trace: examined line, then a result line for every atom settled or given up
function traceV2(premises, target) {
  const mentions = new Map();
  premises.forEach((p, i) => { for (const a of new Set(atomsOf(p))) mentions.set(a, [...(mentions.get(a) ?? []), i]); });
  const lines = []; const seen = new Map();
  const settle = (atom, from) => {
    if (seen.has(atom)) return seen.get(atom);
    seen.set(atom, null);
    const ps = (mentions.get(atom) ?? []).filter((i) => i !== from);
    lines.push(`${atom}: ${ps.length ? ps.map((i) => sentenceLI(premises[i])).join(" ") : "none."}`);
    for (const i of ps) {
      const p = premises[i];
      if (p.kind === "fact") { seen.set(atom, p.value); lines.push(`${atom} is ${p.value}.`); return p.value; }
      const clause = clauseOf(p); let fires = true;
      for (const l of clause) { if (l.atom === atom) continue; const v = settle(l.atom, i); if (v === null || v === l.value) { fires = false; break; } }
      if (fires) { const v = clause.find((l) => l.atom === atom).value; seen.set(atom, v); lines.push(`${atom} is ${v}.`); return v; }
    }
    lines.push(`${atom} unknown.`);
    return null;
  };
  const v = settle(target, -1);
  return lines.join("\n");
}
// sweep trace: copy every rule in prompt order, each sweep; a rule that settles an atom under
// what is known so far (prompt facts + earlier lines) says so; stop when the target is settled,
// or after a sweep that settles nothing.
function traceSweep(premises, target) {
  const known = new Map();
  for (const p of premises) if (p.kind === "fact") known.set(p.atom, p.value);
  const rules = premises.filter((p) => p.kind === "rule");
  const lines = [];
  for (let sweep = 1; ; sweep++) {
    if (sweep > 1) lines.push("Again:");
    let changed = false;
    for (const p of rules) {
      const c = clauseOf(p);
      const open = c.filter((l) => !known.has(l.atom));
      const sat = c.some((l) => known.get(l.atom) === l.value);
      let line = sentenceLI(p).slice(0, -1);
      if (!sat && open.length === 1) { known.set(open[0].atom, open[0].value); line += `, so ${open[0].atom} is ${open[0].value}`; changed = true; }
      lines.push(line + ".");
      if (known.has(target)) return lines.join("\n") + `\nSo ${target} is ${known.get(target)}.`;
    }
    if (!changed) return lines.join("\n") + `\nSo ${target} cannot be determined.`;
  }
}
// annotated sweep: the sweep trace with every atom's value so far written after it, so each
// decision is a local function of the line: "If petal (true) and not smog (?) then sun (false), so smog is true."
function traceASweep(premises, target) {
  const known = new Map();
  for (const p of premises) if (p.kind === "fact") known.set(p.atom, p.value);
  const rules = premises.filter((p) => p.kind === "rule");
  const lines = [];
  const ann = (a) => known.has(a) ? `(${known.get(a)})` : "(?)";
  for (let sweep = 1; ; sweep++) {
    if (sweep > 1) lines.push("Again:");
    let changed = false;
    for (const p of rules) {
      const c = clauseOf(p);
      const open = c.filter((l) => !known.has(l.atom));
      const sat = c.some((l) => known.get(l.atom) === l.value);
      const atoms = new Set(atomsOf(p));
      let line = sentenceLI(p).slice(0, -1).split(" ").map((w) => atoms.has(w) ? `${w} ${ann(w)}` : w).join(" ");
      if (!sat && open.length === 1) { known.set(open[0].atom, open[0].value); line += `, so ${open[0].atom} is ${open[0].value}`; changed = true; }
      lines.push(line + ".");
      if (known.has(target)) return lines.join("\n") + `\nSo ${target} is ${known.get(target)}.`;
    }
    if (!changed) return lines.join("\n") + `\nSo ${target} cannot be determined.`;
  }
}
// psweep: the committed trace (src/tasks/graphli.ts traceLI), what generate() writes.
function inst(t, o) {
  const v = variantInstance(t, TRACE, o);
  if (v) return v;
  if (t === "graphli" && TRACE === "asweep") { const pr = graphliProblem(o); const tr = traceASweep(pr.premises, pr.target); return { ...pr.instance, trace: tr }; }
  if (t === "graphli" && TRACE === "sweep") { const pr = graphliProblem(o); const tr = traceSweep(pr.premises, pr.target); return { ...pr.instance, trace: tr }; }
  if (t === "graphli" && TRACE === "v2") { const pr = graphliProblem(o); return { ...pr.instance, trace: traceV2(pr.premises, pr.target) }; }
  return generate(t, o);
}
if (process.env.CHECK) { // labels of the trace vs the solver, and lengths
  let bad = 0; const len = {};
  for (let j = 0; j < 1200; j++) { const d = 1 + (j % 6); const i = inst(task, { depth: d, seed: 7e6 + j });
    const last = i.trace.split("\n").pop(); const want = i.answer === "unknown" ? "cannot be determined" : `is ${i.answer}`;
    if (!last.includes(want)) bad++; (len[d] ??= []).push(i.trace.length); }
  console.log("disagree", bad, Object.entries(len).map(([d, a]) => `d${d} mean ${Math.round(a.reduce((x, y) => x + y) / a.length)} max ${Math.max(...a)}`).join(", "));
  console.log(inst(task, { depth: 2, seed: 3 }).trace); process.exit(0);
}
const dir = `runs/sft-probe-${tag}`;
rmSync(dir, { recursive: true, force: true });
const corpus = Array.from({ length: 400 }, (_, j) => { const i = inst(task, { depth: 1 + (j % 6), seed: 5e6 + j }); return i.prompt + completionFor(i); });
// LAYERS=n, WIDTH=h (heads of 32 dims, h/64 KV heads, MLP 3h): the tiny preset reshaped.
// KVH=n: n KV heads (the preset shares each of its 2 between 2 query heads).
const shape = { ...(process.env.LAYERS ? { numLayers: +process.env.LAYERS } : {}), ...(process.env.WIDTH ? { hiddenSize: +process.env.WIDTH, numHeads: +process.env.WIDTH / 32, numKvHeads: +process.env.WIDTH / 64, intermediateSize: 3 * +process.env.WIDTH } : {}), ...(process.env.KVH ? { numKvHeads: +process.env.KVH } : {}) };
// INIT=dir: start from that checkpoint (its tokenizer too) instead of a fresh model. A probe's run
// directory holds its untrained init at the top and the trained model in ckpt/ (SAVE=1): give the
// ckpt (li-psweep-phr-induct-cont14 was given the top and so started from the init).
if (process.env.INIT && existsSync(process.env.INIT + "/ckpt")) throw new Error(`INIT=${process.env.INIT} is a probe's run directory, whose top is the untrained init: give ${process.env.INIT}/ckpt`);
const r = process.env.INIT ? (cpSync(process.env.INIT, dir, { recursive: true }), { numParams: "(from " + process.env.INIT + ")", config: JSON.parse(readFileSync(dir + "/config.json", "utf8")) })
  : await initModel({ preset: "tiny", corpus, out: dir, seed: 1, shape, attentionInit: "random", phrases: [...(process.env.PHRASES ? [" is true", " is false"] : []), ...(process.env.LABELS ? labelPhrases() : [])] });
if (process.env.INIT) r.config.numLayers = r.config.num_hidden_layers, r.config.vocabSize = r.config.vocab_size;
console.log("params", r.numParams, "layers", r.config.numLayers, "vocab", r.config.vocabSize, "TRACE", TRACE, "B", B, "depths", DMIN, DMAX);
if (process.env.ARCH === "llama") console.log("arch llama, qkNorm", (await reinitAs(dir)).qkNorm);
// MIMETIC=qk|qkvo|prev: structured attention init of the fresh model (variants.mjs mimeticInit).
if (process.env.MIMETIC) { await mimeticInit(dir, process.env.MIMETIC, 1); console.log("mimetic init", process.env.MIMETIC); }
// ROPE=theta: the RoPE base (the preset's is 10,000). With q/k-norm and 32-dim heads, a base of
// 10,000 turns by at most 0.05 rad over 300 tokens in its slowest pair: too little to prefer the
// latest of several matches; a smaller base gives attention a usable sense of recency.
if (process.env.ROPE) {
  const raw = JSON.parse(readFileSync(dir + "/config.json", "utf8"));
  raw.rope_theta = +process.env.ROPE;
  writeFileSync(dir + "/config.json", JSON.stringify(raw, null, 2));
  console.log("rope_theta", raw.rope_theta);
}
const be = await createBackend("cpu", { threads: Number(process.env.T ?? 1) });
const p = await Policy.load(dir, be);
const model = p.model;
// QKGAIN=g: q/k-norm gains start at g instead of 1. With q/k-norm an attention logit is at most
// sqrt(headDim) g_q g_k (5.7 for 32-wide heads at g = 1, about ln of the context length): telling
// "one match" from "no match" needs sharper attention than reading the matched value does.
// QKSCALE=s: multiply the q/k-norm gains (of an INIT checkpoint) by s: the circuits it learned, sharper.
const qkNorms = [...model.params].filter(([name]) => /[qk]_norm\.weight$/.test(name)).map(([, t]) => t);
if (process.env.QKGAIN) { for (const t of qkNorms) be.fill(t, +process.env.QKGAIN); console.log("qk-norm gains", process.env.QKGAIN); }
if (process.env.QKSCALE) { for (const t of qkNorms) be.scale(t, +process.env.QKSCALE); console.log("qk-norm gains x", process.env.QKSCALE); }
// WARMUP=n: warmup steps (default 50; runSft, which anvil train and the experiments use, took 10).
const opt = new AdamW(model, { lr, warmupSteps: +(process.env.WARMUP ?? 50), schedule: "cosine", totalSteps: steps, minLr: lr * 0.1, maxGradNorm: 1 });
const evals = (process.env.EVD ?? "1,2,3,4").split(",").map(Number).map(d => [d, Array.from({ length: N }, (_, j) => inst(task, { depth: d, seed: 999000 + j, answerable: j % 2 === 0 }))]);
// KW=w (isweep traces): weight w in the loss for the existence checks, the token after an atom
// written in a rule line (" is" when the atom is known, "," or "." when not).
const KW = +(process.env.KW ?? 1);
function existenceChecks(ids) {
  const out = []; let text = "";
  ids.forEach((id, j) => {
    const line = text.slice(text.lastIndexOf("\n") + 1).replace(/^- /, "");
    if (text.includes("<think>") && !text.includes("</think>") && /^If .*[:,] (?!so$)[a-z]+$/.test(line)) out.push(j);
    text += p.tokenizer.decode([id]);
  });
  return out;
}
// AUX=k: k items of each batch are look-up drills (variants.mjs lookupDrill); their atom tokens
// (after ": " or ", ") are random and get no loss.
const AUX = +(process.env.AUX ?? 0);
function drillAtoms(ids) {
  const out = []; let text = "";
  ids.forEach((id, j) => { if (/(: |, |:|,)$/.test(text) && /^ ?[a-z]+$/.test(p.tokenizer.decode([id]))) out.push(j); text += p.tokenizer.decode([id]); });
  return out;
}
const t0 = performance.now(); let la = 0;
for (let s = 0; s < steps; s++) {
  const insts = Array.from({ length: B }, (_, j) => inst(task, { depth: DMIN + ((s * B + j) % (DMAX - DMIN + 1)), seed: 1e6 + s * B + j }));
  const seqs = insts.map((i, j) => { const d = j < AUX ? lookupDrill(i, 1e6 + s * B + j) : { prompt: i.prompt, completion: completionFor(i) };
    return { promptIds: p.encodePrompt(d.prompt), completionIds: p.encodeCompletion(d.completion) }; });
  const batch = packBatch(seqs, p.padId);
  for (let b = 0; b < AUX; b++) for (const j of drillAtoms(seqs[b].completionIds)) batch.mask[b * batch.T + seqs[b].promptIds.length + j - 1] = 0;
  if (AUX && s === 0) console.log("look-up drill of item 0:", p.tokenizer.decode(seqs[0].completionIds), "| unscored:", drillAtoms(seqs[0].completionIds).map((j) => JSON.stringify(p.tokenizer.decode([seqs[0].completionIds[j]]))).join(" "));
  if (KW !== 1) seqs.forEach((q, b) => { for (const j of existenceChecks(q.completionIds)) batch.mask[b * batch.T + q.promptIds.length + j - 1] = KW; });
  if (KW !== 1 && s === 0) console.log("existence checks of item 0:", existenceChecks(seqs[0].completionIds).map((j) => JSON.stringify(p.tokenizer.decode([seqs[0].completionIds[j]]))).join(" "));
  model.zeroGrads();
  const loss = await supervisedGradient(model, batch, B);
  la = s === 0 ? loss : 0.95 * la + 0.05 * loss;
  await opt.update();
  if ((s + 1) % every === 0 || s + 1 === steps) {
    const line = [`step ${s + 1} loss ${la.toFixed(3)} t ${((performance.now() - t0) / 1000).toFixed(0)}s`];
    for (const [d, set] of N ? evals : []) {
      const { result: e } = await evaluate(p, set, TRACE.endsWith("sweep") ? 900 : 300);
      line.push(`d${d} ${(100 * e.acc).toFixed(0)} (a ${(100 * e.acc_answerable).toFixed(0)} u ${(100 * e.acc_unanswerable).toFixed(0)})`);
    }
    console.log(line.join(" | "));
    if (process.env.SAVE) await saveCheckpoint(`${dir}/ckpt`, model, { tokenizerDir: dir });
    if (process.env.SAVEALL) await saveCheckpoint(`${dir}/ckpt-${s + 1}`, model, { tokenizerDir: dir });
  }
}
if (!N) process.exit(0); // N=0: no greedy evaluation (drill-only runs are scored by drill-eval.mjs)
const set = evals[0][1].slice(0, 8);
const gens = await p.generate(set.map((i) => i.prompt), { maxNewTokens: TRACE.endsWith("sweep") ? 900 : 300, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 0 });
set.forEach((i, k) => { console.log("=== answerable", i.answerable, "answer", i.answer); console.log("GOT :", gens[k].text); console.log("WANT:", completionFor(i)); });
