// GraphLA: dish prices linked by linear relations; asks for one price, or "unknown".
//
// The target is the root of a derivation tree: leaves are given prices, inner nodes are defined
// from their children by one relation (unary: "A costs 3 more than twice B", "A costs half as
// much as B"; binary: "C costs as much as A and B together", "C and B together cost as much as
// A"). depth = number of relation steps in the tree = non-given lines of the trace.
// Distractors each introduce a fresh dish (given, or defined from existing dishes) or state a
// vague comparison; a fresh unknown per premise cannot constrain the tree, so they are off every
// derivation path. Unanswerable items replace one tree premise with a vague one (or drop it);
// since the tree has no redundancy this breaks every derivation, and both solvers must agree.

import { ABSTAIN, type GenerateOptions, type Instance } from "./types.js";
import { Rng, mixSeed } from "./rng.js";
import { checkOptions, formatPrompt } from "./prompt.js";
import {
  type Relation,
  derivationOf,
  dishesOf,
  feq,
  frac,
  fstr,
  solveExact,
  solveForward,
} from "./solve-la.js";

export const GRAPHLA_MAX_DEPTH = 10;
export const GRAPHLA_MAX_DISTRACTORS = 12;
/** Prices stay below this (small numbers suit small models). */
export const MAX_PRICE = 999;

const DISHES = [
  "Soup", "Pie", "Tea", "Cake", "Rice", "Stew", "Taco", "Bun", "Pasta", "Salad", "Bread", "Curry",
  "Fish", "Juice", "Toast", "Wrap", "Pizza", "Sushi", "Donut", "Ramen", "Bagel", "Cocoa", "Chili",
  "Waffle", "Omelet", "Burger", "Noodles", "Muffin", "Pudding", "Crepe", "Falafel", "Kebab",
  "Lasagna", "Risotto", "Tart", "Scone", "Latte", "Soda", "Fries", "Steak",
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
    case "vague":
      return `${r.x} costs ${r.cmp} than ${r.than}.`;
  }
}

/** Inverse of sentenceLA: reads a premise back (tests use it to re-solve prompts from their text). */
export function parseSentenceLA(s: string): Relation {
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
  if ((m = s.match(new RegExp(`^${W} costs (more|less) than (\\d+|[A-Z][a-z]+)\\.$`))))
    return { kind: "vague", x: m[1]!, cmp: m[2] as "more" | "less", than: /^\d+$/.test(m[3]!) ? +m[3]! : m[3]! };
  throw new Error(`not a GraphLA premise: ${JSON.stringify(s)}`);
}

/** One trace line: how dish `d` follows from premise `r` given the known prices. */
function stepLA(r: Relation, d: string, val: (x: string) => string): string {
  const v = val(d);
  if (d !== r.x || r.kind === "vague") return `From "${sentenceLA(r)}": ${d} = ${v}.`;
  switch (r.kind) {
    case "given":
      return `${d} = ${v} (given).`;
    case "affine": {
      const shift = r.b > 0 ? ` + ${r.b}` : r.b < 0 ? ` - ${-r.b}` : "";
      const k = r.a === 1 ? "" : `${r.a}*`;
      return `${d} = ${k}${r.y}${shift} = ${k}${val(r.y)}${shift} = ${v}.`;
    }
    case "half":
      return `${d} = ${r.y}/2 = ${val(r.y)}/2 = ${v}.`;
    case "sum":
      return `${d} = ${r.y} + ${r.z} = ${val(r.y)} + ${val(r.z)} = ${v}.`;
    case "diff":
      return `${d} = ${r.y} - ${r.z} = ${val(r.y)} - ${val(r.z)} = ${v}.`;
  }
}

// ---- generation --------------------------------------------------------------------------------

interface TreeNode {
  name: string;
  value: number;
  /** The premise that defines this dish (a given price for leaves). */
  rel: Relation;
  children: TreeNode[];
}

/** Relations defining a new dish `x` from existing (dish, value) pairs, with the resulting price. */
function unaryChoices(x: string, y: string, v: number): { rel: Relation; value: number }[] {
  const out: { rel: Relation; value: number }[] = [];
  for (let b = -9; b <= 9; b++) if (b !== 0) out.push({ rel: { kind: "affine", x, y, a: 1, b }, value: v + b });
  if (v <= 60)
    for (const a of [2, 3]) for (const b of [-5, -3, -1, 0, 0, 0, 1, 2, 3, 5]) out.push({ rel: { kind: "affine", x, y, a, b }, value: a * v + b });
  if (v % 2 === 0) for (let i = 0; i < 6; i++) out.push({ rel: { kind: "half", x, y }, value: v / 2 });
  return out.filter((c) => c.value >= 1 && c.value <= MAX_PRICE);
}

function binaryChoices(x: string, p: [string, number], q: [string, number]): { rel: Relation; value: number }[] {
  const out: { rel: Relation; value: number }[] = [];
  if (p[1] + q[1] <= MAX_PRICE) out.push({ rel: { kind: "sum", x, y: p[0], z: q[0] }, value: p[1] + q[1] });
  const [hi, lo] = p[1] >= q[1] ? [p, q] : [q, p];
  if (hi[1] > lo[1]) out.push({ rel: { kind: "diff", x, y: hi[0], z: lo[0] }, value: hi[1] - lo[1] });
  return out;
}

function buildTree(rng: Rng, steps: number, fresh: () => string): TreeNode {
  const name = fresh();
  if (steps === 0) {
    const value = rng.int(1, 20);
    return { name, value, rel: { kind: "given", x: name, value }, children: [] };
  }
  if (rng.chance(0.4)) {
    const s1 = rng.int(0, steps - 1);
    const a = buildTree(rng, s1, fresh);
    const b = buildTree(rng, steps - 1 - s1, fresh);
    const pair: [[string, number], [string, number]] = rng.chance(0.5)
      ? [[a.name, a.value], [b.name, b.value]]
      : [[b.name, b.value], [a.name, a.value]];
    const c = rng.pick(binaryChoices(name, ...pair)); // sum of two prices <= 2*MAX fits one of them
    return { name, value: c.value, rel: c.rel, children: [a, b] };
  }
  const child = buildTree(rng, steps - 1, fresh);
  const c = rng.pick(unaryChoices(name, child.name, child.value));
  return { name, value: c.value, rel: c.rel, children: [child] };
}

function postOrder(n: TreeNode, out: TreeNode[] = []): TreeNode[] {
  for (const c of n.children) postOrder(c, out);
  out.push(n);
  return out;
}

/** A true but non-determining statement about dish `x`. */
function vagueAbout(rng: Rng, x: string, world: Map<string, number>, others: string[]): Relation {
  const v = world.get(x)!;
  const comparable = others.filter((o) => o !== x && world.get(o) !== v);
  if (comparable.length > 0 && rng.chance(0.5)) {
    const o = rng.pick(comparable);
    return { kind: "vague", x, cmp: v > world.get(o)! ? "more" : "less", than: o };
  }
  if (v > 1 && rng.chance(0.3)) return { kind: "vague", x, cmp: "more", than: rng.int(Math.max(0, v - 9), v - 1) };
  return { kind: "vague", x, cmp: "less", than: v + rng.int(1, 9) };
}

/** Everything about one generated item; `instance` is what datasets store. */
export interface GraphLAProblem {
  instance: Instance;
  /** Premises as shown in the prompt (perturbed when unanswerable), in prompt order. */
  premises: Relation[];
  /** The premises before perturbation (same order, the perturbed one in place). */
  original: Relation[];
  target: string;
  /** The target's price in the unperturbed problem. */
  value: number;
}

const SALT = 0x6c61; // "la": keeps GraphLA and GraphLI streams apart for the same seed

export function graphlaProblem(opts: GenerateOptions): GraphLAProblem {
  const { depth, distractors, seed } = checkOptions("graphla", opts, GRAPHLA_MAX_DEPTH, GRAPHLA_MAX_DISTRACTORS);
  const rng = new Rng(mixSeed(seed, SALT));
  const answerable = opts.answerable ?? rng.chance(0.5);
  const names = rng.shuffle(DISHES.slice());
  let used = 0;
  const fresh = (): string => {
    if (used >= names.length) throw new RangeError("graphla: ran out of dish names; lower depth or distractors");
    return names[used++]!;
  };

  const root = buildTree(rng, depth, fresh);
  const tree = postOrder(root);
  const world = new Map(tree.map((n) => [n.name, n.value]));
  const treePremises = tree.map((n) => n.rel);

  // Distractors: each adds a fresh dish, or is a vague (non-equation) comparison.
  const extra: Relation[] = [];
  for (let k = 0; k < distractors; k++) {
    const existing = [...world.keys()];
    const kind = rng.weighted([
      { item: "given", weight: 3 },
      { item: "defined", weight: 5 },
      { item: "vague", weight: 3 },
    ]);
    if (kind === "vague") {
      extra.push(vagueAbout(rng, rng.pick(existing), world, existing));
      continue;
    }
    const x = fresh();
    let choice: { rel: Relation; value: number } | undefined;
    if (kind === "defined") {
      const p = rng.pick(existing);
      const q = rng.pick(existing);
      const choices =
        p !== q && rng.chance(0.4)
          ? binaryChoices(x, [p, world.get(p)!], [q, world.get(q)!])
          : unaryChoices(x, p, world.get(p)!);
      if (choices.length > 0) choice = rng.pick(choices);
    }
    if (!choice) {
      const value = rng.int(1, 30);
      choice = { rel: { kind: "given", x, value }, value };
    }
    world.set(x, choice.value);
    extra.push(choice.rel);
  }

  // Prompt order is shuffled so position does not reveal the derivation.
  const original = rng.shuffle([...treePremises, ...extra]);
  const target = root.name;
  const fwOrig = solveForward(original);
  const exOrig = solveExact(original);
  const want = frac(root.value);
  if (!fwOrig.values.has(target) || !feq(fwOrig.values.get(target)!, want) || !feq(exOrig.values.get(target) ?? frac(-1), want))
    throw new Error(`graphla seed ${seed}: solver disagrees with the generated value (bug)`);

  let premises = original;
  let trace: string;
  if (answerable) {
    const val = (d: string): string => fstr(fwOrig.values.get(d)!);
    trace = derivationOf(original, fwOrig, target)
      .map((i) => {
        const r = original[i]!;
        const d = [...fwOrig.via].find(([, j]) => j === i)![0];
        return stepLA(r, d, val);
      })
      .join("\n");
  } else {
    // Try tree premises in a seed-derived order until one removal breaks every derivation.
    let done: { premises: Relation[]; trace: string } | null = null;
    for (const broken of rng.shuffle(tree.slice())) {
      const at = original.indexOf(broken.rel);
      const replacement = rng.chance(0.75) ? vagueAbout(rng, broken.name, world, [...world.keys()]) : null;
      const cand = original.slice();
      if (replacement) cand[at] = replacement;
      else cand.splice(at, 1);
      const fw = solveForward(cand);
      if (fw.values.has(target) || solveExact(cand).values.has(target)) continue;
      done = { premises: cand, trace: unknownTraceLA(tree, broken, cand, fw, replacement) };
      break;
    }
    if (!done) throw new Error(`graphla seed ${seed}: no perturbation leaves the target undetermined (bug)`);
    premises = done.premises;
    trace = done.trace;
  }

  const instance: Instance = {
    id: `graphla-${seed}`,
    task: "graphla",
    prompt: formatPrompt(premises.map(sentenceLA), `How much does ${target} cost?`),
    answer: answerable ? String(root.value) : ABSTAIN,
    trace,
    depth,
    distractors,
    answerable,
    seed,
  };
  return { instance, premises, original, target, value: root.value };
}

/** Trace for an unanswerable item: derive what can be derived, name the gap, carry it up. */
function unknownTraceLA(
  tree: TreeNode[],
  broken: TreeNode,
  premises: Relation[],
  fw: ReturnType<typeof solveForward>,
  replacement: Relation | null,
): string {
  const parent = new Map<string, TreeNode>();
  for (const n of tree) for (const c of n.children) parent.set(c.name, n);
  const val = (d: string): string => fstr(fw.values.get(d)!);
  const lines: string[] = [];
  for (const n of tree) {
    // Children of the gap are still derived: they show the premise that is there but does not apply.
    if (n === broken || !fw.values.has(n.name)) continue;
    lines.push(stepLA(premises[fw.via.get(n.name)!]!, n.name, val));
  }
  lines.push(
    replacement
      ? `"${sentenceLA(replacement)}" does not fix the price of ${broken.name}, and no other premise does.`
      : `No premise fixes the price of ${broken.name}.`,
  );
  let gap = broken;
  for (let up = parent.get(gap.name); up; gap = up, up = parent.get(up.name))
    lines.push(`${up.name} needs ${gap.name}, which is unknown.`);
  lines.push(`So the price of ${gap.name} cannot be determined.`);
  return lines.join("\n");
}

export function generateGraphLA(opts: GenerateOptions): Instance {
  return graphlaProblem(opts).instance;
}

export { dishesOf };
