// GraphLI trace variants of the probes (sft-probe.mjs trains on them, token-loss-sweep.mjs
// scores them): transformations of the committed trace (src/tasks/graphli.ts traceLI).
// They were written against the trace without rule labels. Since the product numbers its rules
// (the rsweep variant below, adopted 2026-12-02), the product's trace *is* rsweep, and the
// variants that rebuild a prompt from sentenceLI no longer match the committed trace: they
// reproduce their logs only at a commit before that change (e.g. 0016ac9).
import { generate, graphliProblem } from "../../dist/src/tasks/index.js";
import { sentenceLI } from "../../dist/src/tasks/graphli.js";
import { atomsOf } from "../../dist/src/tasks/solve-li.js";
import { formatPrompt } from "../../dist/src/tasks/prompt.js";
import { readFileSync, writeFileSync } from "node:fs";
import { parseConfig, configToJson } from "../../dist/src/model/config.js";
import { initParameters } from "../../dist/src/model/init.js";
import { wireInduction } from "../../dist/src/model/induction-init.js";
import { saveSafetensors, SINGLE_FILE } from "../../dist/src/model/safetensors.js";
import { Rng } from "../../dist/src/util/rng.js";

// ARCH=llama / ARCH=qwen2 in the probes: the model in `dir` rewritten as a Llama (no q/k-norm) or
// a Qwen2 (no q/k-norm; q, k and v biases, which start at 0), freshly initialised. Returns its config.
export async function reinitAs(dir, type = "llama", seed = 1) {
  const raw = JSON.parse(readFileSync(dir + "/config.json", "utf8"));
  raw.model_type = type; raw.architectures = [type === "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM"];
  delete raw.attention_bias;
  const cfg = parseConfig(raw, type);
  writeFileSync(dir + "/config.json", JSON.stringify(configToJson(cfg), null, 2));
  await saveSafetensors(dir + "/" + SINGLE_FILE, initParameters(cfg, new Rng(seed)), { dtype: "F32" });
  return cfg;
}

// ksweep: the committed trace after a line that restates the prompt's facts in the annotations'
// format ("Known: dust true, flame false."), so every value look-up reads the trace, never the
// prompt's "x is v." sentences.
export function knownLine(premises) {
  return `Known: ${premises.filter((p) => p.kind === "fact").map((p) => `${p.atom} ${p.value}`).join(", ")}.`;
}
// usweep: ksweep with the settle in the same "x v" form (", so x true"): every value then follows
// its atom directly, wherever it is read from.
export const usweep = (pr) => `${knownLine(pr.premises)}\n${pr.instance.trace.replace(/, so ([a-z]+) is (true|false)\./g, ", so $1 $2.")}`;
// isweep: the committed trace with every known value written "x is v", the prompt's own fact
// form, and an unknown atom written bare ("acorn is false, rust, so rust is true."): values never
// change once known and "x is" only ever precedes x's value, so a look-up needs no recency.
// osweep: isweep with the unknown atoms left out ("If soot then shell." when nothing is known).
function isweepLine(line, omit) {
  const m = line.match(/^(If .*?): (.*?)((?:, so [a-z]+ is (?:true|false))?)\.$/);
  if (!m) return line;
  const vals = m[2].split(", ").map((av) => { const [a, v] = av.split(" "); return v === "?" ? (omit ? null : a) : `${a} is ${v}`; }).filter((x) => x !== null);
  return vals.length ? `${m[1]}: ${vals.join(", ")}${m[3]}.` : `${m[1]}${m[3]}.`;
}
export const isweep = (tr, omit) => tr.split("\n").map((l) => isweepLine(l, omit)).join("\n");
// fsweep / fisweep: psweep / isweep with the prompt's facts copied too, each as its own line in
// prompt order ("acorn is false."), so the next line is always the prompt's next premise (no
// skipping facts) and each sweep restates the facts close to where they are read.
export function withFacts(premises, trace) {
  const lines = trace.split("\n"), tail = lines.pop(), out = [];
  const sweeps = [[]];
  for (const l of lines) l === "Again:" ? sweeps.push([]) : sweeps.at(-1).push(l);
  if (lines.length === 0) return trace;
  sweeps.forEach((sw, k) => {
    if (k > 0) out.push("Again:");
    const complete = k < sweeps.length - 1 || tail.includes("cannot be determined");
    let r = 0;
    for (const p of premises) {
      if (!complete && r === sw.length) break;
      out.push(p.kind === "fact" ? sentenceLI(p) : sw[r++]);
    }
  });
  return [...out, tail].join("\n");
}
// gisweep: isweep with the prompt's facts listed before its rules (each group in its own order),
// so an existence check ("is x known?") can look inside the facts' block only. The rules keep
// their order, so the trace is isweep's.
function factsFirst(o) {
  const pr = graphliProblem(o);
  const premises = [...pr.premises.filter((p) => p.kind === "fact"), ...pr.premises.filter((p) => p.kind !== "fact")];
  return { ...pr.instance, prompt: formatPrompt(premises.map(sentenceLI), `Is ${pr.target} true or false?`), trace: isweep(pr.instance.trace, false) };
}
// csweep: the existence check with the trace's copying pressure but nothing else: every rule
// copied from the prompt in order, once, each atom written "x is v" when the prompt states it as
// a fact and bare otherwise ("If smoke then not flame: smoke is true, flame."), no settles, then
// the answer. The answer does not follow from this trace: the probe only scores the checks.
function checkSweep(o) {
  const pr = graphliProblem(o);
  const facts = new Map(pr.premises.filter((p) => p.kind === "fact").map((p) => [p.atom, p.value]));
  const lines = pr.premises.filter((p) => p.kind !== "fact").map((p) => {
    const atoms = [...new Set(sentenceLI(p).slice(0, -1).split(" ").filter((w) => !["If", "then", "and", "not"].includes(w)))];
    return `${sentenceLI(p).slice(0, -1)}: ${atoms.map((a) => (facts.has(a) ? `${a} is ${facts.get(a)}` : a)).join(", ")}.`;
  });
  return { ...pr.instance, trace: lines.join("\n") };
}

// CAP=1 (any variant): the prompt's facts start with a capital, as English sentences do
// ("- Acorn is false."), and so does an atom settled in the trace (", so Rust is true"): a
// capitalised atom then only ever names a known value, so "is x known?" is a match on one token
// ("is there an earlier Acorn?") instead of a conjunction (an earlier "acorn" that is also a fact).
export const cap = (w) => w[0].toUpperCase() + w.slice(1);
export function capitalise(i) {
  return { ...i, prompt: i.prompt.replace(/^- ([a-z]+) is (true|false)\.$/gm, (_, a, v) => `- ${cap(a)} is ${v}.`),
    trace: i.trace.replace(/, so ([a-z]+) is (true|false)/g, (_, a, v) => `, so ${cap(a)} is ${v}`) };
}
// wsweep: a closed world. The prompt states every atom's starting value, capitalised: the facts
// ("- Spark is false.") and, at random places among the premises, one line per other atom
// ("- Vapor is unknown."); each trace line writes every atom of its rule "x is v" with v true,
// false or unknown, and a settle restates the atom capitalised (", so Vapor is true"). Every read
// is then a value read from a capitalised statement (the prompt's, or the latest settle's), and
// there is no existence check left: "is x known?" is the value "unknown".
// LOWER=1: the same closed world in lower case throughout ("- vapor is unknown.", ", so vapor is
// true"): no case mapping to learn; a read prefers a true / false statement of the atom over an
// "unknown" one (values only ever go from unknown to known), which needs no sense of recency.
// (li-bsweep's BLOCK=1, blocked rules added here, ran on the generator of 7602930 with this file
// as of 071bd38; the generator now makes them itself: src/tasks/graphli.ts blockedRules.)
function closedWorld(o) {
  const name = process.env.LOWER ? (w) => w : cap;
  const rng = new Rng(o.seed ^ 0x5eed);
  const pr = graphliProblem(o);
  const facts = new Map(pr.premises.filter((p) => p.kind === "fact").map((p) => [p.atom, p.value]));
  const atoms = [...new Set(pr.premises.flatMap(atomsOf))];
  const lines = pr.premises.map((p) => (p.kind === "fact" ? `${name(p.atom)} is ${p.value}.` : sentenceLI(p)));
  for (const a of atoms) if (!facts.has(a)) lines.splice(rng.below(lines.length + 1), 0, `${name(a)} is unknown.`);
  const trace = pr.instance.trace.split("\n").map((l) => {
    const m = l.match(/^(If .*?): (.*?)((?:, so [a-z]+ is (?:true|false))?)\.$/);
    if (!m) return l;
    const pairs = m[2].split(", ").map((av) => { const [a, v] = av.split(" "); return `${a} is ${v === "?" ? "unknown" : v}`; });
    return `${m[1]}: ${pairs.join(", ")}${m[3].replace(/so ([a-z]+)/, (_, a) => `so ${name(a)}`)}.`;
  }).join("\n");
  return { ...pr.instance, prompt: formatPrompt(lines, `Is ${pr.target} true or false?`), trace };
}
// jsweep: every value written right after its atom, in the prompt too ("- foam true."), and an
// unknown atom written bare, as in isweep ("If foam then not coal: foam true, coal, so coal false.").
// After an atom the next token is then its value or "," / "." wherever it is read from: a look-up
// keyed on the token just before the value (1-back) rather than two before it ("foam is true").
// (The mqar.mjs runs that seemed to favour that form counted rather than looked up: README.md.)
function juxtaposed(o) {
  const i = generate("graphli", o);
  const trace = i.trace.split("\n").map((l) => {
    const m = l.match(/^((?:- )?If .*?): (.*?)((?:, so [a-z]+ is (?:true|false))?)\.$/);
    if (!m) return l;
    const pairs = m[2].split(", ").map((av) => { const [a, v] = av.split(" "); return v === "?" ? a : `${a} ${v}`; });
    return `${m[1]}: ${pairs.join(", ")}${m[3].replace(" is ", " ")}.`;
  }).join("\n");
  return { ...i, prompt: i.prompt.replace(/^- ([a-z]+) is (true|false)\.$/gm, "- $1 $2."), trace };
}
/** An instance of `task` with its trace in variant `trace` (null: not a GraphLI variant here). */
export function variantInstance(task, trace, o) {
  const i = variantInstance0(task, trace, o);
  return i && process.env.CAP ? capitalise(i) : i;
}
function variantInstance0(task, trace, o) {
  if (task !== "graphli") return null;
  if (trace === "ksweep") { const pr = graphliProblem(o); return { ...pr.instance, trace: `${knownLine(pr.premises)}\n${pr.instance.trace}` }; }
  if (trace === "usweep") { const pr = graphliProblem(o); return { ...pr.instance, trace: usweep(pr) }; }
  if (trace === "gisweep") return factsFirst(o);
  if (trace === "csweep") return checkSweep(o);
  if (trace === "wsweep") return closedWorld(o);
  if (trace === "jsweep") return juxtaposed(o);
  if (trace === "rsweep") return labelled(o);
  if (trace === "isweep" || trace === "osweep") { const i = generate(task, o); return { ...i, trace: isweep(i.trace, trace === "osweep") }; }
  if (trace === "fsweep" || trace === "fisweep") { const pr = graphliProblem(o); const tr = trace === "fisweep" ? isweep(pr.instance.trace, false) : pr.instance.trace; return { ...pr.instance, trace: withFacts(pr.premises, tr) }; }
  return null;
}
// rsweep: the committed trace with numbered rules. The prompt's rules read "[k] If ...", k = 1, 2,
// ... in prompt order (facts bare), and each trace line starts with its rule's label. The next
// rule is then found by its label, a counter plus a one-token look-up ("[4]" -> the token after
// "[4]" in the prompt), instead of by where the previous copy ended in the prompt (the next rule's
// first atom: 1.46 nats at step 400, the largest loss left with the phrases). With LABELS=1 the
// tokenizer keeps "[1] If" ... "[60] If" whole (labelPhrases): the token after a label is then the
// rule's first word after "If", one look-up on (a bare "[4]" is always followed by " If").
export const labelPhrases = () => Array.from({ length: 60 }, (_, k) => `[${k + 1}] If`);
function labelled(o) {
  const pr = graphliProblem(o);
  const label = new Map();
  for (const p of pr.premises) if (p.kind === "rule") label.set(sentenceLI(p).slice(0, -1), `[${label.size + 1}]`);
  const lines = pr.premises.map((p) => (p.kind === "rule" ? `${label.get(sentenceLI(p).slice(0, -1))} ${sentenceLI(p)}` : sentenceLI(p)));
  const trace = pr.instance.trace.split("\n").map((l) => { const k = label.get(l.slice(0, l.indexOf(":"))); return k ? `${k} ${l}` : l; }).join("\n");
  return { ...pr.instance, prompt: formatPrompt(lines, `Is ${pr.target} true or false?`), trace };
}

// AUX=k in sft-probe.mjs: k of each batch's items are a dense look-up drill on the same prompt:
// "<think>Look up: dust, spark is false, vapor, ...</think>", every atom of the premises once,
// in a random order, written "X is v" when the prompt states it as a fact and bare otherwise (the
// isweep trace's own forms, lower case as in its lines). Each atom is followed by exactly the
// existence check and value read the trace needs, about 18 of them in 100 tokens (the trace: one
// in 15). The atoms themselves are random, so sft-probe.mjs gives them no loss (lookupMask).
// SUB=1: the drill's prompt keeps a random subset of 2..all of the premises (in order), so many
// drills are short: a look-up's first gradient scales with 1 / the positions it attends over.
export function lookupDrill(i, seed) {
  if (process.env.SUB) i = { ...i, prompt: premiseSubset(i.prompt, new Rng(seed ^ 0x5b5)) };
  const facts = new Map([...i.prompt.matchAll(/^- ([A-Za-z]+) is (true|false)\.$/gm)].map((m) => [m[1].toLowerCase(), m[2]]));
  const atoms = [...new Set([...i.prompt.split("Premises:")[1].split("Question:")[0].matchAll(/\b[a-z]+\b/gi)].map((m) => m[0].toLowerCase())
    .filter((w) => !["if", "then", "and", "not", "is", "true", "false"].includes(w)))];
  const rng = new Rng(seed ^ 0x100c);
  for (let j = atoms.length - 1; j > 0; j--) { const k = rng.below(j + 1); [atoms[j], atoms[k]] = [atoms[k], atoms[j]]; }
  return { prompt: i.prompt, completion: `<think>Look up: ${atoms.map((a) => (facts.has(a) ? `${a} is ${facts.get(a)}` : a)).join(", ")}.</think>` };
}
function premiseSubset(prompt, rng) {
  const lines = prompt.split("\n"), first = lines.indexOf("Premises:") + 1, end = lines.findIndex((l) => l.startsWith("Question:"));
  const premises = lines.slice(first, end), keep = 2 + rng.below(premises.length - 1);
  const drop = new Set(); while (premises.length - drop.size > keep) drop.add(rng.below(premises.length));
  return [...lines.slice(0, first), ...premises.filter((_, j) => !drop.has(j)), ...lines.slice(end)].join("\n");
}

// MIMETIC=qkvo|prev|induct in the probes: the freshly made model in `dir` with structured
// attention weights (a starting point only; every weight still trains).
// "induct": the product's induction init (src/model/induction-init.ts, initModel's default since
// 2026-12-01): a previous-token head in layer 0 wired to an induction head in layer 1.
// "qkvo" and "prev", the first tries (as they ran): after Trockman & Kolter, "Mimetic
// initialization of self-attention layers" (2023), each kv group g reads a random orthonormal
// head_dim-subspace P_g of the residual and its query heads read the same one, so
// Wq_h^T Wk_g = s^2 P_g^T P_g (attend to tokens like your own), and value/output copy another
// subspace V_g (Wo_h Wv_g = V_g^T V_g), all added to the random init. "prev" also makes layer 0's
// first kv group a previous-token head (queries and keys read one direction c shared by every
// token embedding, the key turned by one RoPE position) without wiring it to anything.
export async function mimeticInit(dir, mode, seed = 1, s = 0.5) {
  const cfg = parseConfig(JSON.parse(readFileSync(dir + "/config.json", "utf8")), dir);
  const params = initParameters(cfg, new Rng(seed));
  if (mode === "induct") wireInduction(params, cfg, seed);
  else if (mode === "qkvo" || mode === "prev") mimeticAdd(params, cfg, mode, seed, s);
  else throw new Error(`MIMETIC=${mode}: use qkvo, prev or induct`);
  await saveSafetensors(dir + "/" + SINGLE_FILE, params, { dtype: "F32" });
}
function mimeticAdd(params, cfg, mode, seed, s) {
  const rng = new Rng(seed + 7777);
  const H = cfg.hiddenSize, hd = cfg.headDim, nH = cfg.numHeads, nKv = cfg.numKvHeads, per = nH / nKv, half = hd / 2;
  const get = (n) => params.get(n).data;
  const gauss = () => rng.normal(0, 1);
  const c = new Float32Array(H).map(gauss); const cn = Math.hypot(...c); c.forEach((v, i) => (c[i] = v / cn));
  function subspace() {
    const rows = [];
    while (rows.length < hd) {
      const r = new Float32Array(H).map(gauss);
      for (const q of mode === "prev" ? [c, ...rows] : rows) { let d = 0; for (let i = 0; i < H; i++) d += r[i] * q[i]; for (let i = 0; i < H; i++) r[i] -= d * q[i]; }
      const n = Math.hypot(...r); rows.push(r.map((v) => v / n));
    }
    return rows;
  }
  const u = (d) => ((d % half) < 4 ? 1 : 0);
  const uTurned = (d) => { const th = Math.pow(cfg.ropeTheta, (-2 * (d % half)) / hd);
    return d < half ? u(d) * Math.cos(th) - u(d + half) * Math.sin(th) : u(d) * Math.cos(th) + u(d - half) * Math.sin(th); };
  for (let l = 0; l < cfg.numLayers; l++) {
    const a = `model.layers.${l}.self_attn.`;
    const q = get(a + "q_proj.weight"), k = get(a + "k_proj.weight"), v = get(a + "v_proj.weight"), o = get(a + "o_proj.weight");
    for (let g = 0; g < nKv; g++) {
      const P = subspace(), V = subspace(), prev = mode === "prev" && l === 0 && g === 0;
      for (let d = 0; d < hd; d++) for (let i = 0; i < H; i++) {
        k[(g * hd + d) * H + i] += prev ? 3 * uTurned(d) * c[i] : s * P[d][i];
        v[(g * hd + d) * H + i] += s * V[d][i];
        for (let j = 0; j < per; j++) {
          q[((g * per + j) * hd + d) * H + i] += prev ? 3 * u(d) * c[i] : s * P[d][i];
          o[i * nH * hd + (g * per + j) * hd + d] += (s / per) * V[d][i];
        }
      }
    }
  }
  if (mode === "prev") {
    const e = get("model.embed_tokens.weight"), en = 0.02 * Math.sqrt(H);
    for (let t = 0; t < cfg.vocabSize; t++) for (let i = 0; i < H; i++) e[t * H + i] += en * c[i];
    for (const n of ["q_norm", "k_norm"]) get(`model.layers.0.self_attn.${n}.weight`).fill(2.5);
  }
}
