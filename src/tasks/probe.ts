// Hypothesis-only shortcut probe: can a bag-of-surface-features classifier, which sees the
// premises and question but never the trace or the answer, predict an item's answerability (or
// its true/false answer)? If it can do much better than chance on held-out items, the generator
// leaves a footprint a model could learn instead of reasoning (DESIGN.md, "Tasks": the probe
// must stay at or under 60% at every depth).
//
// Features (entity names replaced by their role: TARGET for the queried entity, ENT otherwise):
//   - word uni/bi/trigrams within each premise sentence (numbers bucketed), literal numbers,
//     the whole role-replaced sentence shape, question n-grams;
//   - premise count, duplicate premises, distinct entities;
//   - entity occurrence counts: histogram of per-ENT counts (1, 2, 3, 4+), the target's count,
//     and per-entity position profiles (how often as a sentence's first word vs. elsewhere).
// Classifier: L2-regularised logistic regression, full-batch Adam on RMS-scaled log1p counts,
// the L2 strength chosen on a deterministic split of the training set. Everything is
// deterministic: same options, same numbers.

import { generate, generateDataset, type IntRange } from "./index.js";
import type { Instance, TaskName } from "./types.js";
import { TaskRng, mixSeed } from "./rng.js";
import { splitPrompt } from "./prompt.js";

export type ProbeLabel = "answerable" | "answer";

/** Function words of both tasks' sentences and questions; any other word is an entity name. */
const KEYWORDS = new Set(
  (
    "is are was were be been true false if then and or not no nor neither either both " +
    "costs cost costing more less than twice three times thrice double triple half third quarter " +
    "as much many together same sum difference total plus minus equals equal exactly at least most " +
    "the a an of by each per price prices dollar dollars cents so given it its that this which " +
    "how what does do did question premises whenever when only implies follows holds also " +
    "one two four five six seven eight nine ten"
  ).split(" "),
);

const NUM_RE = /^\d+(?:\.\d+)?$/;

function tokenize(s: string): string[] {
  return s.match(/[A-Za-z]+|\d+(?:\.\d+)?|[^\sA-Za-z\d.?!]/g) ?? [];
}

function bucket(x: number): string {
  if (x < 5) return "0-4";
  if (x < 10) return "5-9";
  if (x < 20) return "10-19";
  if (x < 50) return "20-49";
  if (x < 100) return "50-99";
  return "100+";
}

function isEntityWord(w: string, task: string): boolean {
  if (NUM_RE.test(w) || !/^[A-Za-z]+$/.test(w) || KEYWORDS.has(w.toLowerCase())) return false;
  // GraphLA dishes are capitalised; GraphLI atoms are lowercase words (any case accepted).
  return task === "graphla" ? /^[A-Z]/.test(w) : true;
}

/** Entity names of an item, and the queried one. */
export function entitiesOf(inst: Pick<Instance, "prompt" | "task">): { target: string | undefined; entities: Set<string> } {
  const { premises, question } = splitPrompt(inst.prompt);
  const task = String(inst.task);
  const norm = (w: string) => (task === "graphla" ? w : w.toLowerCase());
  const qEnts = tokenize(question).filter((w) => isEntityWord(w, task)).map(norm);
  const target = qEnts[0];
  const entities = new Set<string>(qEnts);
  for (const p of premises) for (const w of tokenize(p)) if (isEntityWord(w, task)) entities.add(norm(w));
  return { target, entities };
}

function inc(m: Map<string, number>, k: string, v = 1): void {
  m.set(k, (m.get(k) ?? 0) + v);
}

/** Named, non-negative feature counts of one item, from its premises and question only. */
export function probeFeatures(inst: Pick<Instance, "prompt" | "task">): Map<string, number> {
  const task = String(inst.task);
  const norm = (w: string) => (task === "graphla" ? w : w.toLowerCase());
  const { premises, question } = splitPrompt(inst.prompt);
  const { target } = entitiesOf(inst);
  const f = new Map<string, number>();
  const role = (w: string): string => {
    if (NUM_RE.test(w)) return `#${bucket(Number(w))}`;
    if (isEntityWord(w, task)) return norm(w) === target ? "TARGET" : "ENT";
    return w.toLowerCase();
  };
  const ngrams = (toks: string[], pre: string) => {
    for (let i = 0; i < toks.length; i++) {
      inc(f, `${pre}1:${toks[i]}`);
      if (i + 1 < toks.length) inc(f, `${pre}2:${toks[i]} ${toks[i + 1]}`);
      if (i + 2 < toks.length) inc(f, `${pre}3:${toks[i]} ${toks[i + 1]} ${toks[i + 2]}`);
    }
  };

  // Per-entity occurrence counts and position profiles.
  const count = new Map<string, number>();
  const first = new Map<string, number>();
  const seen = new Map<string, number>();
  let numbers = 0;
  for (const p of premises) {
    const words = tokenize(p);
    const roles = words.map(role);
    ngrams(["<s>", ...roles, "</s>"], "p");
    inc(f, `shape:${roles.join(" ")}`);
    words.forEach((w, i) => {
      if (NUM_RE.test(w)) {
        numbers++;
        inc(f, `num:${w}`);
        inc(f, `numctx:${roles[i - 1] ?? "<s>"} ${w}`);
      } else if (isEntityWord(w, task)) {
        const e = norm(w);
        inc(count, e);
        if (i === 0) inc(first, e);
      }
    });
    inc(seen, p);
  }
  ngrams(["<q>", ...tokenize(question).map(role), "</q>"], "q");

  const cap = (n: number, c: number) => (n >= c ? `${c}+` : String(n));
  inc(f, "n_prem", premises.length);
  inc(f, `n_prem=${cap(premises.length, 25)}`);
  const dups = [...seen.values()].reduce((s, c) => s + c - 1, 0);
  inc(f, "dup_prem", dups);
  inc(f, `dup_prem=${cap(dups, 3)}`);
  inc(f, "n_num", numbers);
  inc(f, `n_num=${cap(numbers, 12)}`);
  let nEnt = 0;
  for (const [e, c] of count) {
    const prof = `first${cap(first.get(e) ?? 0, 3)}_other${cap(c - (first.get(e) ?? 0), 3)}`;
    if (e === target) {
      inc(f, "tgt_cnt", c);
      inc(f, `tgt_cnt=${cap(c, 6)}`);
      inc(f, `tgt_prof:${prof}`);
    } else {
      nEnt++;
      inc(f, `ent_cnt_hist=${cap(c, 4)}`);
      inc(f, `ent_prof:${prof}`);
    }
  }
  if (target === undefined || !count.has(target)) inc(f, "tgt_absent");
  inc(f, "n_ent", nEnt);
  inc(f, `n_ent=${cap(nEnt, 25)}`);
  return f;
}

// ---- logistic regression -----------------------------------------------------------------------

export interface ProbeModel {
  vocab: Map<string, number>;
  /** Per-feature scale (1 / RMS of log1p counts on the training set). */
  scale: Float64Array;
  weights: Float64Array;
  bias: number;
  l2: number;
}

interface Csr {
  rowPtr: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
  rows: number;
}

function toCsr(feats: Map<string, number>[], vocab: Map<string, number>, scale?: Float64Array): Csr {
  const rowPtr = new Int32Array(feats.length + 1);
  const cols: number[] = [];
  const vals: number[] = [];
  feats.forEach((fm, r) => {
    const row: [number, number][] = [];
    for (const [k, v] of fm) {
      const j = vocab.get(k);
      if (j !== undefined && v > 0) row.push([j, Math.log1p(v)]);
    }
    row.sort((a, b) => a[0] - b[0]);
    for (const [j, v] of row) {
      cols.push(j);
      vals.push(scale ? v * scale[j]! : v);
    }
    rowPtr[r + 1] = cols.length;
  });
  return { rowPtr, cols: Int32Array.from(cols), vals: Float64Array.from(vals), rows: feats.length };
}

function predictRaw(x: Csr, w: Float64Array, b: number): Float64Array {
  const z = new Float64Array(x.rows);
  for (let r = 0; r < x.rows; r++) {
    let s = b;
    for (let k = x.rowPtr[r]!; k < x.rowPtr[r + 1]!; k++) s += w[x.cols[k]!]! * x.vals[k]!;
    z[r] = s;
  }
  return z;
}

function trainLogReg(x: Csr, y: Uint8Array, dim: number, l2: number, iters: number): { w: Float64Array; b: number } {
  const w = new Float64Array(dim);
  const m = new Float64Array(dim + 1);
  const v = new Float64Array(dim + 1);
  const g = new Float64Array(dim + 1);
  let b = 0;
  const lr = 0.05;
  const b1 = 0.9;
  const b2 = 0.999;
  const n = x.rows;
  for (let t = 1; t <= iters; t++) {
    const z = predictRaw(x, w, b);
    g.fill(0);
    for (let r = 0; r < n; r++) {
      const p = 1 / (1 + Math.exp(-z[r]!));
      const d = (p - y[r]!) / n;
      for (let k = x.rowPtr[r]!; k < x.rowPtr[r + 1]!; k++) g[x.cols[k]!]! += d * x.vals[k]!;
      g[dim]! += d;
    }
    for (let j = 0; j < dim; j++) g[j]! += l2 * w[j]!;
    const c1 = 1 - b1 ** t;
    const c2 = 1 - b2 ** t;
    for (let j = 0; j <= dim; j++) {
      m[j] = b1 * m[j]! + (1 - b1) * g[j]!;
      v[j] = b2 * v[j]! + (1 - b2) * g[j]! * g[j]!;
      const step = (lr * (m[j]! / c1)) / (Math.sqrt(v[j]! / c2) + 1e-8);
      if (j < dim) w[j]! -= step;
      else b -= step;
    }
  }
  return { w, b };
}

function accuracyOf(x: Csr, y: Uint8Array, w: Float64Array, b: number): number {
  if (x.rows === 0) return NaN;
  const z = predictRaw(x, w, b);
  let ok = 0;
  for (let r = 0; r < x.rows; r++) if ((z[r]! > 0 ? 1 : 0) === y[r]) ok++;
  return ok / x.rows;
}

export interface FitOptions {
  /** Adam iterations (default 150). */
  iters?: number;
  /** L2 strengths tried on a held-out fifth of the training set (default [1e-4, 1e-3, 1e-2]). */
  l2Grid?: readonly number[];
  /** Features seen in fewer training items are dropped (default 2). */
  minCount?: number;
  /** Seed of the model-selection split (default 1). */
  seed?: number;
}

const LABELS: Record<ProbeLabel, (i: Instance) => boolean> = {
  answerable: (i) => i.answerable,
  answer: (i) => i.answer === "true",
};

function checkLabel(items: readonly Instance[], label: ProbeLabel): void {
  if (label !== "answerable" && label !== "answer") throw new RangeError(`probe label must be "answerable" or "answer", got ${JSON.stringify(label)}`);
  if (label === "answer")
    for (const i of items) {
      if (i.task === "graphla") throw new RangeError('probe label "answer" needs a binary answer: GraphLA answers are numbers, use "answerable"');
      if (!i.answerable || (i.answer !== "true" && i.answer !== "false"))
        throw new RangeError(`probe label "answer" takes answerable true/false items only, got answer ${JSON.stringify(i.answer)} (${i.id})`);
    }
}

function fitFeatures(feats: Map<string, number>[], y: Uint8Array, opts: FitOptions): { model: ProbeModel; x: Csr } {
  const minCount = opts.minCount ?? 2;
  const iters = opts.iters ?? 150;
  const df = new Map<string, number>();
  for (const fm of feats) for (const k of fm.keys()) inc(df, k);
  const keys = [...df.entries()].filter(([, c]) => c >= minCount).map(([k]) => k).sort();
  const vocab = new Map(keys.map((k, j) => [k, j] as [string, number]));
  const dim = keys.length;
  const raw = toCsr(feats, vocab);
  const ss = new Float64Array(dim);
  for (let k = 0; k < raw.cols.length; k++) ss[raw.cols[k]!]! += raw.vals[k]! ** 2;
  const scale = new Float64Array(dim);
  for (let j = 0; j < dim; j++) scale[j] = ss[j]! > 0 ? 1 / Math.sqrt(ss[j]! / feats.length) : 0;
  const x = toCsr(feats, vocab, scale);

  const grid = opts.l2Grid ?? [1e-4, 1e-3, 1e-2];
  let l2 = grid[0]!;
  if (grid.length > 1) {
    // Deterministic 80/20 split of the training items for choosing the L2 strength.
    const rng = new TaskRng(mixSeed(opts.seed ?? 1, 0x9b0e));
    const isVal = Array.from({ length: feats.length }, () => rng.chance(0.2));
    const pick = (val: boolean) => {
      const idx = isVal.flatMap((v, i) => (v === val ? [i] : []));
      return { x: toCsr(idx.map((i) => feats[i]!), vocab, scale), y: Uint8Array.from(idx.map((i) => y[i]!)) };
    };
    const tr = pick(false);
    const va = pick(true);
    let best = -1;
    for (const cand of grid) {
      const { w, b } = trainLogReg(tr.x, tr.y, dim, cand, iters);
      const acc = accuracyOf(va.x, va.y, w, b);
      if (acc > best + 1e-12) [best, l2] = [acc, cand];
    }
  }
  const { w, b } = trainLogReg(x, y, dim, l2, iters);
  return { model: { vocab, scale, weights: w, bias: b, l2 }, x };
}

export interface FittedProbe {
  model: ProbeModel;
  /** P(label) for an item. */
  predict(inst: Instance): number;
  /** Accuracy (threshold 0.5) on items; labels default to the fitted label of each item. */
  accuracy(items: readonly Instance[], labels?: readonly boolean[]): number;
  trainAccuracy: number;
  /** The features with the largest |weight| (positive = pushes towards the label). */
  topFeatures(k: number): { feature: string; weight: number }[];
}

/** Fits the probe on `items` for `label` (see probeAccuracy). */
export function fitProbe(items: readonly Instance[], label: ProbeLabel, opts: FitOptions = {}): FittedProbe {
  checkLabel(items, label);
  return fitWithLabels(items, items.map(LABELS[label]), opts, label);
}

/** Fits the probe on arbitrary boolean labels (controls: random or planted labels). */
export function fitWithLabels(items: readonly Instance[], labels: readonly boolean[], opts: FitOptions = {}, label?: ProbeLabel): FittedProbe {
  if (items.length !== labels.length) throw new RangeError("fitWithLabels: one label per item");
  if (items.length < 10) throw new RangeError(`probe needs at least 10 training items, got ${items.length}`);
  const feats = items.map(probeFeatures);
  const y = Uint8Array.from(labels, (l) => (l ? 1 : 0));
  const { model, x } = fitFeatures(feats, y, opts);
  const csr = (its: readonly Instance[]) => toCsr(its.map(probeFeatures), model.vocab, model.scale);
  const acc = (its: readonly Instance[], ys: readonly boolean[]) =>
    accuracyOf(csr(its), Uint8Array.from(ys, (l) => (l ? 1 : 0)), model.weights, model.bias);
  const names = [...model.vocab.keys()];
  return {
    model,
    predict: (inst) => 1 / (1 + Math.exp(-predictRaw(csr([inst]), model.weights, model.bias)[0]!)),
    accuracy: (its, ys) => {
      if (ys === undefined && label === undefined) throw new RangeError("accuracy: pass labels (this probe was fitted on custom labels)");
      if (ys === undefined) checkLabel(its, label!);
      return acc(its, ys ?? its.map(LABELS[label!]));
    },
    trainAccuracy: accuracyOf(x, y, model.weights, model.bias),
    topFeatures: (k) =>
      names
        .map((feature, j) => ({ feature, weight: model.weights[j]! * model.scale[j]! }))
        .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight) || (a.feature < b.feature ? -1 : 1))
        .slice(0, k),
  };
}

// ---- the experiment ------------------------------------------------------------------------------

export interface ProbeOptions {
  task: TaskName;
  depth: IntRange;
  label: ProbeLabel;
  /** Training items (for label "answer": answerable items; twice as many are generated). */
  nTrain: number;
  nTest: number;
  seed: number;
  distractors?: IntRange;
  fit?: FitOptions;
}

export interface ProbeResult {
  task: TaskName;
  depth: IntRange;
  label: ProbeLabel;
  /** Held-out accuracy (threshold 0.5). */
  accuracy: number;
  trainAccuracy: number;
  /** Accuracy of always predicting the held-out majority class (0.5 when balanced). */
  majority: number;
  nTrain: number;
  nTest: number;
  /** Held-out items dropped because their prompt also occurs in the training set. */
  overlapDropped: number;
  /** Distinct entity names seen in the training prompts (a sanity check of entity detection). */
  entityTypes: number;
  l2: number;
  topFeatures: { feature: string; weight: number }[];
}

/**
 * Generates a training set and a held-out set (different seeds; held-out prompts that also occur
 * in the training set are dropped), fits the probe on the training set and scores it on the
 * held-out one. label "answer" (GraphLI only): answerable items, label = answer is "true".
 */
export function probeAccuracy(o: ProbeOptions): ProbeResult {
  if (o.label === "answer" && o.task !== "graphli")
    throw new RangeError(`probe label "answer" needs a binary answer; ${o.task} answers are not true/false (use "answerable")`);
  if (o.label !== "answer" && o.label !== "answerable") throw new RangeError(`probe label must be "answerable" or "answer", got ${JSON.stringify(o.label)}`);
  for (const [k, v] of [["nTrain", o.nTrain], ["nTest", o.nTest]] as const)
    if (!Number.isInteger(v) || v < 10) throw new RangeError(`${k} must be an integer >= 10, got ${v}`);
  const pool = (n: number, salt: number): Instance[] => {
    const seed = mixSeed(o.seed, salt);
    // Answer probe with fixed depth and distractors: only the answerable items are generated.
    if (o.label === "answer" && typeof o.depth === "number" && typeof o.distractors !== "object")
      return Array.from({ length: n }, (_, i) => generate(o.task, { depth: o.depth as number, distractors: o.distractors as number | undefined, seed: mixSeed(seed, i), answerable: true }));
    const items = generateDataset(o.task, { n: o.label === "answer" ? 2 * n : n, depth: o.depth, seed, distractors: o.distractors });
    return o.label === "answer" ? items.filter((i) => i.answerable).slice(0, n) : items;
  };
  const train = pool(o.nTrain, 0x7a11);
  const trainPrompts = new Set(train.map((i) => i.prompt));
  const all = pool(o.nTest, 0x7e57);
  const test = all.filter((i) => !trainPrompts.has(i.prompt));
  const probe = fitProbe(train, o.label, o.fit);
  const yTest = test.map(LABELS[o.label]);
  const pos = yTest.filter(Boolean).length;
  const ents = new Set<string>();
  for (const i of train) for (const e of entitiesOf(i).entities) ents.add(e);
  return {
    task: o.task,
    depth: o.depth,
    label: o.label,
    accuracy: probe.accuracy(test, yTest),
    trainAccuracy: probe.trainAccuracy,
    majority: test.length ? Math.max(pos, test.length - pos) / test.length : NaN,
    nTrain: train.length,
    nTest: test.length,
    overlapDropped: all.length - test.length,
    entityTypes: ents.size,
    l2: probe.model.l2,
    topFeatures: probe.topFeatures(8),
  };
}
