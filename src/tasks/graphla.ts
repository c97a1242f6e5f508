// GraphLA: dish prices linked by linear relations; asks for one price, or "unknown".
//
// Every item, answerable or not, is built from the same three parts:
// - P, the target's derivation: a spine of `depth` relation steps from the target down
//   (unary: "A costs 3 more than twice B", "A costs half as much as B"; binary, whose second
//   child is a side leaf: "C costs as much as A and B together", "C and B together cost as much
//   as A"). Leaves are grounded: a given price, or a genuine two-unknown system ("A and B together
//   cost 17." + "A costs 3 more than B.") that fixes the leaf only jointly with a fresh partner.
// - F, a free chain: same forms and numbers, but its bottom dish is never given (it occurs once,
//   in its parent's premise), so nothing in F is determined.
// - G, grounded distractor chains: same forms, not connected to the target.
// F and G together hold exactly `distractors` premises. An unanswerable item is its answerable
// sibling with ONE REFERENCE SWAP: the premise of P's spine node at cut depth d and one premise
// of F's spine exchange a child dish (forms and numbers stay). P above the cut then hangs on F's
// free bottom, and F's top on P's grounded lower part. Premise count, relation forms, numbers
// and every dish's occurrence count are thus the same multiset in both siblings, and the parts
// are drawn before the label is consulted (including the check that a sane swap exists), so no
// surface feature tells the classes apart: only following the references does.

import { ABSTAIN, type GenerateOptions, type Instance } from "./types.js";
import { TaskRng, mixSeed } from "./rng.js";
import { checkOptions, formatPrompt, labelled, premiseLabels } from "./prompt.js";
import { type Frac, type Relation, dishesOf, fadd, fdiv, feq, fmul, frac, fstr, fsub, solveExact, solveForward } from "./solve-la.js";

export const GRAPHLA_MAX_DEPTH = 10;
export const GRAPHLA_MAX_DISTRACTORS = 12;
/** Fewer requested distractors are raised to this: F's two steps. */
export const MIN_DISTRACTORS = 2;
/** Prices stay below this (small numbers suit small models). */
export const MAX_PRICE = 999;

const DISHES = [
  "Soup", "Pie", "Tea", "Cake", "Rice", "Stew", "Taco", "Bun", "Pasta", "Salad", "Bread", "Curry",
  "Fish", "Juice", "Toast", "Wrap", "Pizza", "Sushi", "Donut", "Ramen", "Bagel", "Cocoa", "Chili",
  "Waffle", "Omelet", "Burger", "Noodles", "Muffin", "Pudding", "Crepe", "Falafel", "Kebab",
  "Lasagna", "Risotto", "Tart", "Scone", "Latte", "Soda", "Fries", "Steak", "Honey", "Jam",
  "Mango", "Melon", "Olive", "Onion", "Pear", "Plum", "Peach", "Lemon", "Apple", "Grape", "Cherry",
  "Bacon", "Egg", "Ham", "Cheese", "Butter", "Yogurt", "Cereal", "Oats", "Beans", "Corn", "Nuts",
  "Candy", "Fudge", "Cookie", "Brownie", "Pretzel", "Nachos", "Gumbo", "Paella", "Tofu", "Kimchi",
  "Dumpling", "Churro", "Flan", "Mochi", "Bisque", "Quiche", "Samosa", "Pita", "Hummus", "Shake",
  "Cider", "Coffee", "Milk", "Lemonade", "Biscuit", "Granola",
];

// ---- sentences ---------------------------------------------------------------------------------

const MULT: Record<number, string> = { 2: "twice", 3: "three times" };

export function sentenceLA(r: Relation): string {
  switch (r.kind) {
    case "given":
      return `${r.x} costs ${r.value}.`;
    case "affine": {
      const shift = r.b > 0 ? `${r.b} more than` : `${-r.b} less than`;
      if (r.a === 1) return `${r.x} costs ${shift} ${r.y}.`;
      if (r.b === 0) return `${r.x} costs ${MULT[r.a]} as much as ${r.y}.`;
      return `${r.x} costs ${shift} ${MULT[r.a]} ${r.y}.`;
    }
    case "half":
      return `${r.x} costs half as much as ${r.y}.`;
    case "sum":
      return `${r.x} costs as much as ${r.y} and ${r.z} together.`;
    case "diff":
      return `${r.x} and ${r.z} together cost as much as ${r.y}.`;
    case "total":
      return `${r.x} and ${r.y} together cost ${r.value}.`;
  }
}

/**
 * The prompt's premise lines: relations numbered in prompt order ("[2] Tart costs 3 more than
 * Pie."), given prices bare, as GraphLI numbers its rules (premiseLinesLI, and why). Both siblings
 * have the same labels: the swap keeps every premise's kind and position.
 */
export function premiseLinesLA(premises: readonly Relation[]): string[] {
  return labelled(premises.map(sentenceLA), relationLabels(premises));
}

const relationLabels = (premises: readonly Relation[]): string[] => premiseLabels(premises.map((r) => r.kind !== "given"));

/** Inverse of sentenceLA and of a premiseLinesLA line (tests re-solve prompts from their text). */
export function parseSentenceLA(line: string): Relation {
  const s = line.replace(/^\[\d+\] /, "");
  let m: RegExpMatchArray | null;
  const W = "([A-Z][a-z]+)";
  if ((m = s.match(new RegExp(`^${W} costs (\\d+)\\.$`)))) return { kind: "given", x: m[1]!, value: +m[2]! };
  if ((m = s.match(new RegExp(`^${W} costs (\\d+) (more|less) than (twice|three times) ${W}\\.$`))))
    return { kind: "affine", x: m[1]!, y: m[5]!, a: m[4] === "twice" ? 2 : 3, b: (m[3] === "more" ? 1 : -1) * +m[2]! };
  if ((m = s.match(new RegExp(`^${W} costs (\\d+) (more|less) than ${W}\\.$`))))
    return { kind: "affine", x: m[1]!, y: m[4]!, a: 1, b: (m[3] === "more" ? 1 : -1) * +m[2]! };
  if ((m = s.match(new RegExp(`^${W} costs (twice|three times) as much as ${W}\\.$`))))
    return { kind: "affine", x: m[1]!, y: m[3]!, a: m[2] === "twice" ? 2 : 3, b: 0 };
  if ((m = s.match(new RegExp(`^${W} costs half as much as ${W}\\.$`)))) return { kind: "half", x: m[1]!, y: m[2]! };
  if ((m = s.match(new RegExp(`^${W} costs as much as ${W} and ${W} together\\.$`))))
    return { kind: "sum", x: m[1]!, y: m[2]!, z: m[3]! };
  if ((m = s.match(new RegExp(`^${W} and ${W} together cost as much as ${W}\\.$`))))
    return { kind: "diff", x: m[1]!, z: m[2]!, y: m[3]! };
  if ((m = s.match(new RegExp(`^${W} and ${W} together cost (\\d+)\\.$`))))
    return { kind: "total", x: m[1]!, y: m[2]!, value: +m[3]! };
  throw new Error(`not a GraphLA premise: ${JSON.stringify(s)}`);
}

// ---- ground-truth trace ------------------------------------------------------------------------

/** A premise's dishes in the order its sentence names them. */
const named = (r: Relation): string[] => (r.kind === "diff" ? [r.x, r.z, r.y] : dishesOf(r));

/** `e` as the operand of "/": bare when it is a single number or dish. */
const paren = (e: string): string => (e.includes(" ") ? `(${e})` : e);

/**
 * How `d`, the one dish of `r` without a price, follows from the others' prices: the expression
 * over numbers the trace writes, and its value.
 */
function solveFor(r: Exclude<Relation, { kind: "given" }>, d: string, v: (x: string) => Frac): { expr: string; value: Frac } {
  const s = (x: string) => fstr(v(x));
  const shift = (b: number) => (b > 0 ? ` + ${b}` : b < 0 ? ` - ${-b}` : "");
  switch (r.kind) {
    case "affine": // x = a*y + b
      if (d === r.x) return { expr: `${r.a === 1 ? "" : `${r.a}*`}${s(r.y)}${shift(r.b)}`, value: fadd(fmul(frac(r.a), v(r.y)), frac(r.b)) };
      return {
        expr: r.a === 1 ? `${s(r.x)}${shift(-r.b)}` : `${paren(`${s(r.x)}${shift(-r.b)}`)}/${r.a}`,
        value: fdiv(fsub(v(r.x), frac(r.b)), frac(r.a)),
      };
    case "half": // x = y/2
      return d === r.x ? { expr: `${s(r.y)}/2`, value: fdiv(v(r.y), frac(2)) } : { expr: `2*${s(r.x)}`, value: fmul(frac(2), v(r.x)) };
    case "sum": // x = y + z
      if (d === r.x) return { expr: `${s(r.y)} + ${s(r.z)}`, value: fadd(v(r.y), v(r.z)) };
      return d === r.y ? { expr: `${s(r.x)} - ${s(r.z)}`, value: fsub(v(r.x), v(r.z)) } : { expr: `${s(r.x)} - ${s(r.y)}`, value: fsub(v(r.x), v(r.y)) };
    case "diff": // x + z = y
      if (d === r.y) return { expr: `${s(r.x)} + ${s(r.z)}`, value: fadd(v(r.x), v(r.z)) };
      return d === r.x ? { expr: `${s(r.y)} - ${s(r.z)}`, value: fsub(v(r.y), v(r.z)) } : { expr: `${s(r.y)} - ${s(r.x)}`, value: fsub(v(r.y), v(r.x)) };
    case "total": // x + y = value
      return d === r.x ? { expr: `${r.value} - ${s(r.y)}`, value: fsub(frac(r.value), v(r.y)) } : { expr: `${r.value} - ${s(r.x)}`, value: fsub(frac(r.value), v(r.x)) };
  }
}

/** One computation the trace writes: "<expr> = <value>". */
export interface TraceStep {
  expr: string;
  value: string;
}

/**
 * Forward substitution written out, in sweeps over the premises in prompt order, the same shape
 * as GraphLI's trace (traceLI) so that every token is a copy or a decision local to its line: each
 * line copies one premise whole with its label (a contiguous copy), then each dish it names with
 * its price known so far, or "?" (a look-up of one earlier "= v"), then, when exactly one dish is
 * still without a price, ", so <dish> = <expression over numbers> = <value>". A system leaf ("A
 * and B together cost 17" with "A costs 3 more than B", both unpriced) is solved on the "together"
 * line, which quotes its partner premise with its label: ", with [5] A costs 3 more than B, so A =
 * (17 + 3)/2 = 10". Given prices are not copied: their dishes just read as priced. The trace stops
 * with "So <target> costs v." as soon as the target is priced; "Again:" follows a sweep that
 * priced something; a sweep that priced nothing ends it with "So <target> cannot be determined."
 *
 *   [4] Tart costs 3 less than three times Cookie: Tart ?, Cookie 10, so Tart = 3*10 - 3 = 27.
 */
export function traceLA(premises: readonly Relation[], target: string): { trace: string; value: Frac | null; steps: TraceStep[] } {
  const known = new Map<string, Frac>();
  const steps: TraceStep[] = [];
  for (const r of premises) if (r.kind === "given") known.set(r.x, frac(r.value));
  const v = (d: string): Frac => known.get(d)!;
  const lines: string[] = [];
  const done = (): { trace: string; value: Frac | null; steps: TraceStep[] } => {
    const value = known.get(target) ?? null;
    lines.push(value ? `So ${target} costs ${fstr(value)}.` : `So ${target} cannot be determined.`);
    return { trace: lines.join("\n"), value, steps };
  };
  if (known.has(target)) return done();
  const labels = relationLabels(premises);
  const quote = (r: Relation): string => `${labels[premises.indexOf(r)]} ${sentenceLA(r).slice(0, -1)}`;
  for (let sweep = 0; ; sweep++) {
    if (sweep > 0) lines.push("Again:");
    let changed = false;
    for (const r of premises) {
      if (r.kind === "given") continue;
      const ds = named(r);
      let line = `${quote(r)}: ${ds.map((d) => `${d} ${known.has(d) ? fstr(v(d)) : "?"}`).join(", ")}`;
      const open = ds.filter((d) => !known.has(d));
      if (open.length === 1) {
        const { expr, value } = solveFor(r, open[0]!, v);
        known.set(open[0]!, value);
        line += `, so ${open[0]} = ${expr} = ${fstr(value)}`;
        steps.push({ expr, value: fstr(value) });
        changed = true;
      } else if (r.kind === "total" && open.length === 2) {
        // x + y = s with x - y = b (the link, either way round): x = (s + b)/2.
        const link = premises.find(
          (q): q is Extract<Relation, { kind: "affine" }> => q.kind === "affine" && q.a === 1 && ((q.x === r.x && q.y === r.y) || (q.x === r.y && q.y === r.x)),
        );
        if (link) {
          const b = link.x === r.x ? link.b : -link.b;
          const value = fdiv(fadd(frac(r.value), frac(b)), frac(2));
          known.set(r.x, value);
          const expr = `(${r.value}${b >= 0 ? ` + ${b}` : ` - ${-b}`})/2`;
          line += `, with ${quote(link)}, so ${r.x} = ${expr} = ${fstr(value)}`;
          steps.push({ expr, value: fstr(value) });
          changed = true;
        }
      }
      lines.push(`${line}.`);
      if (known.has(target)) return done();
    }
    if (!changed) return done();
  }
}

// ---- generation --------------------------------------------------------------------------------

type Defining = Extract<Relation, { kind: "affine" | "half" | "sum" | "diff" }>;

interface DishNode {
  name: string;
  /** Price; for F, a hidden one (its bottom is never given), drawn like every other price. */
  value: number;
  /** The premise defining this dish from its children (inner nodes only). */
  rel: Defining | null;
  /** Inner nodes: [spine child] or [spine child, side leaf]; leaves: []. */
  children: DishNode[];
}

/** A spine from `spine[0]` (top) down to `spine[k]` (bottom leaf), with its premises. */
interface Chain {
  spine: DishNode[];
  premises: Relation[];
}

type Step = "unary" | "side-given" | "side-system";
type Leaf = "given" | "system" | "free";
const STEP_COST: Record<Step, number> = { unary: 1, "side-given": 2, "side-system": 3 };
const LEAF_COST: Record<Leaf, number> = { given: 1, system: 2, free: 0 };

function pickStep(rng: TaskRng, budget: number): Step {
  const all: { item: Step; weight: number }[] = [
    { item: "unary", weight: 0.6 },
    { item: "side-given", weight: 0.3 },
    { item: "side-system", weight: 0.1 },
  ];
  return rng.weighted(all.filter((s) => STEP_COST[s.item] <= budget));
}

const pickGroundedLeaf = (rng: TaskRng, budget: number): Leaf => (budget >= LEAF_COST.system && rng.chance(0.2) ? "system" : "given");

/** Relations defining a new dish `x` from one existing (dish, value), with the resulting price. */
function unaryChoices(x: string, y: string, v: number): { rel: Defining; value: number }[] {
  const out: { rel: Defining; value: number }[] = [];
  for (let b = -9; b <= 9; b++) if (b !== 0) out.push({ rel: { kind: "affine", x, y, a: 1, b }, value: v + b });
  if (v <= 60)
    for (const a of [2, 3]) for (const b of [-5, -3, -1, 0, 0, 0, 1, 2, 3, 5]) out.push({ rel: { kind: "affine", x, y, a, b }, value: a * v + b });
  if (v % 2 === 0) for (let i = 0; i < 6; i++) out.push({ rel: { kind: "half", x, y }, value: v / 2 });
  return out.filter((c) => c.value >= 1 && c.value <= MAX_PRICE);
}

function binaryChoices(x: string, p: [string, number], q: [string, number]): { rel: Defining; value: number }[] {
  const out: { rel: Defining; value: number }[] = [];
  if (p[1] + q[1] <= MAX_PRICE) out.push({ rel: { kind: "sum", x, y: p[0], z: q[0] }, value: p[1] + q[1] });
  const [hi, lo] = p[1] >= q[1] ? [p, q] : [q, p];
  if (hi[1] > lo[1]) out.push({ rel: { kind: "diff", x, y: hi[0], z: lo[0] }, value: hi[1] - lo[1] });
  return out;
}

/** A leaf dish and the premises grounding it (none when free). */
function makeLeaf(rng: TaskRng, fresh: () => string, kind: Leaf): { node: DishNode; premises: Relation[] } {
  const node: DishNode = { name: fresh(), value: rng.int(1, 20), rel: null, children: [] };
  if (kind === "free") return { node, premises: [] };
  if (kind === "given") return { node, premises: [{ kind: "given", x: node.name, value: node.value }] };
  // System: a fresh partner q with |node - q| in 1..9; either dish may be the affine's subject.
  const partner = fresh();
  const diffs = Array.from({ length: 19 }, (_, i) => i - 9).filter((b) => b !== 0 && node.value - b >= 1);
  const b = rng.pick(diffs); // node = q + b
  const q = node.value - b;
  const link: Relation = rng.chance(0.5)
    ? { kind: "affine", x: node.name, y: partner, a: 1, b }
    : { kind: "affine", x: partner, y: node.name, a: 1, b: -b };
  const pair: [string, string] = rng.chance(0.5) ? [node.name, partner] : [partner, node.name];
  return { node, premises: [{ kind: "total", x: pair[0], y: pair[1], value: node.value + q }, link] };
}

/** Puts a new spine node on top of `child`. */
function growStep(rng: TaskRng, fresh: () => string, child: DishNode, step: Step, premises: Relation[]): DishNode {
  const name = fresh();
  if (step === "unary") {
    const c = rng.pick(unaryChoices(name, child.name, child.value));
    premises.push(c.rel);
    return { name, value: c.value, rel: c.rel, children: [child] };
  }
  const side = makeLeaf(rng, fresh, step === "side-given" ? "given" : "system");
  premises.push(...side.premises);
  const a: [string, number] = [child.name, child.value];
  const b: [string, number] = [side.node.name, side.node.value];
  const c = rng.pick(rng.chance(0.5) ? binaryChoices(name, a, b) : binaryChoices(name, b, a));
  premises.push(c.rel);
  return { name, value: c.value, rel: c.rel, children: [child, side.node] };
}

/** P: exactly `steps` relation steps over a grounded bottom. */
function derivationChain(rng: TaskRng, fresh: () => string, steps: number): Chain {
  const premises: Relation[] = [];
  const bottom = makeLeaf(rng, fresh, pickGroundedLeaf(rng, Infinity));
  premises.push(...bottom.premises);
  const spine = [bottom.node];
  for (let k = 0; k < steps; k++) spine.unshift(growStep(rng, fresh, spine[0]!, pickStep(rng, Infinity), premises));
  return { spine, premises };
}

/** F or G: a chain of exactly `budget` premises and at least `minSteps` relation steps. */
function budgetChain(rng: TaskRng, fresh: () => string, budget: number, free: boolean, minSteps = 0): Chain {
  const premises: Relation[] = [];
  const leaf = makeLeaf(rng, fresh, free ? "free" : pickGroundedLeaf(rng, budget - minSteps));
  premises.push(...leaf.premises);
  const spine = [leaf.node];
  for (let left = budget - premises.length; left > 0; left = budget - premises.length) {
    const reserve = Math.max(0, minSteps - spine.length); // one premise per step still owed
    spine.unshift(growStep(rng, fresh, spine[0]!, pickStep(rng, left - reserve), premises));
  }
  return { spine, premises };
}

/** x's price from its (possibly swapped) premise and the prices of its children. */
function evalDefining(r: Defining, price: (d: string) => number): number {
  switch (r.kind) {
    case "affine":
      return r.a * price(r.y) + r.b;
    case "half":
      return price(r.y) / 2;
    case "sum":
      return price(r.y) + price(r.z);
    case "diff":
      return price(r.y) - price(r.z);
  }
}

function rename<R extends Defining>(r: R, from: string, to: string): R {
  const out = { ...r };
  if (out.y === from) out.y = to;
  else if ((out.kind === "sum" || out.kind === "diff") && out.z === from) out.z = to;
  else throw new Error(`rename: ${from} is not a child in ${sentenceLA(r)} (bug)`);
  return out;
}

interface Swap {
  /** Premise indices (prompt order) of P's cut premise and F's premise, and their swapped forms. */
  at: [number, number];
  swapped: [Defining, Defining];
}

/**
 * The first sane reference swap between P's spine node at depth `cut` and an F spine premise, in
 * a seed-derived order (F levels that keep the target's tree `depth` deep first). F's lowest
 * premise is never used: the cut premise would then name a dish that occurs only there, which no
 * answerable item's tree does (a one-hop footprint). Sane: every
 * price in the new world (F's free bottom keeping its hidden price) is a positive integer
 * <= MAX_PRICE, so the perturbed world is as plausible as the original.
 */
function findSwap(rng: TaskRng, P: Chain, F: Chain, cut: number, depth: number, premises: Relation[], world: Map<string, number>): Swap | null {
  const u = P.spine[cut]!;
  const kF = F.spine.length - 1;
  // Target's tree height after swapping at F level j: cut + 1 + (kF - j - 1).
  const levels = rng.shuffle(Array.from({ length: kF - 1 }, (_, j) => j)).sort((i, j) => Math.abs(cut + kF - i - depth) - Math.abs(cut + kF - j - depth));
  const kids = rng.shuffle(u.children.slice());
  const mentions = new Map<string, number>();
  for (const r of premises) for (const d of dishesOf(r)) mentions.set(d, (mentions.get(d) ?? 0) + 1);
  for (const j of levels)
    for (const c of kids) {
      const f = F.spine[j]!;
      const g = F.spine[j + 1]!;
      // Equal mention counts keep even "premise shape + its dishes' counts" features unchanged.
      if (mentions.get(c.name) !== mentions.get(g.name)) continue;
      const uRel = rename(u.rel!, c.name, g.name);
      const fRel = rename(f.rel!, g.name, c.name);
      const price = new Map(world);
      const settle = (spine: DishNode[], from: number, rel: Defining): boolean => {
        for (let i = from; i >= 0; i--) {
          const v = evalDefining(i === from ? rel : spine[i]!.rel!, (d) => price.get(d)!);
          if (!Number.isInteger(v) || v < 1 || v > MAX_PRICE) return false;
          price.set(spine[i]!.name, v);
        }
        return true;
      };
      if (!settle(P.spine, cut, uRel) || !settle(F.spine, j, fRel)) continue;
      return { at: [premises.indexOf(u.rel!), premises.indexOf(f.rel!)], swapped: [uRel, fRel] };
    }
  return null;
}

/** Everything about one generated item; `instance` is what datasets store. */
export interface GraphLAProblem {
  instance: Instance;
  /** Premises as shown in the prompt, in prompt order. */
  premises: Relation[];
  /** The answerable sibling's premises (same order; equal to `premises` when answerable). */
  original: Relation[];
  target: string;
  /** The target's price in the answerable sibling. */
  value: number;
  /** Distance from the target of the swapped premise (drawn for answerable items too). */
  cutDepth: number;
  /** Indices of the two premises the swap changed (unanswerable items only). */
  swapped: [number, number] | null;
}

const SALT = 0x6c61; // "la": keeps GraphLA and GraphLI streams apart for the same seed

export function graphlaProblem(opts: GenerateOptions): GraphLAProblem {
  const checked = checkOptions("graphla", opts, GRAPHLA_MAX_DEPTH, GRAPHLA_MAX_DISTRACTORS);
  const { depth, seed } = checked;
  // F is what an unanswerable item hangs on, so every item has one, of at least two steps (the
  // cut premise must then point at a dish F defines, never straight at F's once-named bottom).
  const distractors = Math.max(MIN_DISTRACTORS, checked.distractors);
  if (opts.cutDepth !== undefined && (!Number.isInteger(opts.cutDepth) || opts.cutDepth < 0 || opts.cutDepth > depth - 1))
    throw new RangeError(`graphla: cutDepth must be an integer in [0, depth - 1] = [0, ${depth - 1}], got ${opts.cutDepth}`);
  const rng = new TaskRng(mixSeed(seed, SALT));
  // Both draws happen whatever the options, so forced siblings share every part.
  const drawnAnswerable = rng.chance(0.5);
  const drawnCut = rng.int(0, depth - 1);
  const answerable = opts.answerable ?? drawnAnswerable;
  const cutDepth = opts.cutDepth ?? drawnCut;

  // Parts are drawn, and redrawn until a sane swap exists, without looking at `answerable`.
  for (let attempt = 0; attempt < 100; attempt++) {
    const names = rng.shuffle(DISHES.slice());
    let used = 0;
    const fresh = (): string => {
      if (used >= names.length) throw new RangeError("graphla: ran out of dish names; lower depth or distractors");
      return names[used++]!;
    };
    const P = derivationChain(rng, fresh, depth);
    const fBudget = rng.int(Math.max(MIN_DISTRACTORS, Math.ceil(distractors / 2)), distractors);
    const F = budgetChain(rng, fresh, fBudget, true, 2);
    const G: Chain[] = [];
    for (let left = distractors - fBudget; left > 0; ) {
      const size = rng.int(1, left);
      G.push(budgetChain(rng, fresh, size, false));
      left -= size;
    }
    const world = new Map([P, F, ...G].flatMap((c) => collect(c.spine[0]!)).map((n) => [n.name, n.value]));
    // Prompt order is shuffled so position does not reveal the derivation.
    const original = rng.shuffle([...P.premises, ...F.premises, ...G.flatMap((c) => c.premises)]);
    const swap = findSwap(rng, P, F, cutDepth, depth, original, world);
    if (!swap) continue;

    const target = P.spine[0]!.name;
    const value = P.spine[0]!.value;
    const exOrig = solveExact(original);
    if (!feq(exOrig.values.get(target) ?? frac(-1), frac(value)))
      throw new Error(`graphla seed ${seed}: solver disagrees with the generated value (bug)`);
    let premises = original;
    if (!answerable) {
      premises = original.slice();
      premises[swap.at[0]] = swap.swapped[0];
      premises[swap.at[1]] = swap.swapped[1];
      // By construction the target now hangs on F's free bottom (a redraw here would depend on
      // the label, so a determined target is a bug, not a retry).
      if (solveExact(premises).values.has(target) || solveForward(premises).values.has(target))
        throw new Error(`graphla seed ${seed}: the swap left the target determined (bug)`);
    }
    const trace = traceLA(premises, target);
    const entailed = answerable ? frac(value) : null;
    if (trace.value === null ? entailed !== null : entailed === null || !feq(trace.value, entailed))
      throw new Error(`graphla seed ${seed}: the trace's price disagrees with the exact solver (bug)`);
    const instance: Instance = {
      id: `graphla-${seed}`,
      task: "graphla",
      prompt: formatPrompt(premiseLinesLA(premises), `How much does ${target} cost?`),
      answer: answerable ? String(value) : ABSTAIN,
      trace: trace.trace,
      depth,
      distractors,
      answerable,
      seed,
    };
    return { instance, premises, original, target, value, cutDepth, swapped: answerable ? null : swap.at };
  }
  throw new Error(`graphla seed ${seed}: no sane swap in 100 attempts (bug)`);
}

function collect(n: DishNode, out: DishNode[] = []): DishNode[] {
  out.push(n);
  for (const c of n.children) collect(c, out);
  return out;
}

export function generateGraphLA(opts: GenerateOptions): Instance {
  return graphlaProblem(opts).instance;
}

export { dishesOf };
