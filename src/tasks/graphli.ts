// GraphLI: propositions, facts and if-then rules; asks whether one proposition is true or false,
// or "unknown".
//
// The target is the root of a derivation tree; each inner node is one inference step:
//   modus ponens      b true, "if b then x"              -> x true
//   conjunction       b, c true, "if b and c then x"     -> x true
//   modus tollens     h false, "if x then h"             -> x false
//   conj. tollens     h false, c true, "if x and c then h" -> x false
// Leaves are facts. depth = number of inference steps = non-given lines of the trace.
// Distractors are rules with a fresh head or facts about fresh atoms (a fresh atom that only
// ever appears as a head can always be made true, so they settle nothing in the tree).
// Unanswerable items get one intervention on a tree premise — drop it, turn a fact into a
// conditional on an unsettled atom, reverse a rule, or add an unsettled condition to a rule —
// kept only when the complete solver (`entails`) confirms the target is no longer settled.

import { ABSTAIN, type GenerateOptions, type Instance } from "./types.js";
import { Rng, mixSeed } from "./rng.js";
import { checkOptions, formatPrompt } from "./prompt.js";
import { type Premise, type LIResult, derivationOfLI, entails, solveLI } from "./solve-li.js";

export const GRAPHLI_MAX_DEPTH = 10;
export const GRAPHLI_MAX_DISTRACTORS = 12;

const ATOMS = [
  "rain", "wind", "fog", "snow", "hail", "mist", "frost", "storm", "cloud", "sun", "heat", "ice",
  "mud", "dew", "haze", "flood", "smoke", "dust", "sleet", "thunder", "gale", "spark", "flame",
  "ash", "steam", "glow", "echo", "dawn", "dusk", "tide", "wave", "moss", "bloom", "seed", "leaf",
  "root", "bark", "stone", "sand", "shade",
];

// ---- sentences ---------------------------------------------------------------------------------

export function sentenceLI(p: Premise): string {
  return p.kind === "fact" ? `${p.atom} is ${p.value}.` : `If ${p.body.join(" and ")} then ${p.head}.`;
}

/** Inverse of sentenceLI (tests re-solve prompts from their text). */
export function parseSentenceLI(s: string): Premise {
  let m: RegExpMatchArray | null;
  if ((m = s.match(/^([a-z]+) is (true|false)\.$/))) return { kind: "fact", atom: m[1]!, value: m[2] === "true" };
  if ((m = s.match(/^If ([a-z]+(?: and [a-z]+)*) then ([a-z]+)\.$/))) return { kind: "rule", body: m[1]!.split(" and "), head: m[2]! };
  throw new Error(`not a GraphLI premise: ${JSON.stringify(s)}`);
}

/** One trace line: how `atom` got its value from premise `p`. */
function stepLI(p: Premise, atom: string, values: Map<string, boolean>): string {
  const v = values.get(atom)!;
  if (p.kind === "fact") return `${atom} is ${v} (given).`;
  const rule = `If ${p.body.join(" and ")} then ${p.head}`;
  if (atom === p.head) {
    const why = p.body.length === 1 ? `${p.body[0]} is true` : `${p.body.join(" and ")} are true`;
    return `${rule}; ${why}, so ${atom} is true.`;
  }
  const others = p.body.filter((b) => b !== atom);
  const why = others.length === 0 ? "" : ` and ${others.join(" and ")} ${others.length === 1 ? "is" : "are"} true`;
  return `${rule}; ${p.head} is false${why}, so ${atom} is false.`;
}

// ---- generation --------------------------------------------------------------------------------

interface TreeNode {
  atom: string;
  value: boolean;
  /** The premise that settles this atom from its children (a fact for leaves). */
  rel: Premise;
  children: TreeNode[];
}

function buildTree(rng: Rng, steps: number, value: boolean, fresh: () => string): TreeNode {
  const atom = fresh();
  if (steps === 0) return { atom, value, rel: { kind: "fact", atom, value }, children: [] };
  const binary = rng.chance(0.4);
  const s1 = binary ? rng.int(0, steps - 1) : steps - 1;
  if (value) {
    if (!binary) {
      const c = buildTree(rng, s1, true, fresh);
      return { atom, value, rel: { kind: "rule", body: [c.atom], head: atom }, children: [c] };
    }
    const a = buildTree(rng, s1, true, fresh);
    const b = buildTree(rng, steps - 1 - s1, true, fresh);
    return { atom, value, rel: { kind: "rule", body: rng.shuffle([a.atom, b.atom]), head: atom }, children: [a, b] };
  }
  if (!binary) {
    const h = buildTree(rng, s1, false, fresh);
    return { atom, value, rel: { kind: "rule", body: [atom], head: h.atom }, children: [h] };
  }
  const h = buildTree(rng, s1, false, fresh);
  const c = buildTree(rng, steps - 1 - s1, true, fresh);
  return { atom, value, rel: { kind: "rule", body: rng.shuffle([atom, c.atom]), head: h.atom }, children: [h, c] };
}

function postOrder(n: TreeNode, out: TreeNode[] = []): TreeNode[] {
  for (const c of n.children) postOrder(c, out);
  out.push(n);
  return out;
}

type Intervention =
  | { kind: "drop" }
  | { kind: "conditional"; premise: Premise } // fact -> rule on an unsettled atom
  | { kind: "reverse"; premise: Premise } // if b then x  ->  if x then b
  | { kind: "extra"; premise: Premise; extra: string }; // one more, unsettled, condition

export interface GraphLIProblem {
  instance: Instance;
  /** Premises as shown in the prompt, in prompt order. */
  premises: Premise[];
  /** The premises before the intervention. */
  original: Premise[];
  target: string;
  /** The target's value in the unperturbed problem. */
  value: boolean;
}

const SALT = 0x6c69; // "li"

export function graphliProblem(opts: GenerateOptions): GraphLIProblem {
  const { depth, distractors, seed } = checkOptions("graphli", opts, GRAPHLI_MAX_DEPTH, GRAPHLI_MAX_DISTRACTORS);
  const rng = new Rng(mixSeed(seed, SALT));
  const answerable = opts.answerable ?? rng.chance(0.5);
  const names = rng.shuffle(ATOMS.slice());
  let used = 0;
  const fresh = (): string => {
    if (used >= names.length) throw new RangeError("graphli: ran out of atom names; lower depth or distractors");
    return names[used++]!;
  };

  const root = buildTree(rng, depth, rng.chance(0.5), fresh);
  const tree = postOrder(root);
  const world = new Map(tree.map((n) => [n.atom, n.value]));

  const extra: Premise[] = [];
  for (let k = 0; k < distractors; k++) {
    const existing = [...world.keys()];
    const atom = fresh();
    if (rng.chance(0.35)) {
      const value = rng.chance(0.5);
      world.set(atom, value);
      extra.push({ kind: "fact", atom, value });
      continue;
    }
    const body = [rng.pick(existing)];
    if (rng.chance(0.4)) {
      const b = rng.pick(existing);
      if (b !== body[0]) body.push(b);
    }
    // The head is fresh; its "world" value must satisfy the rule so the premises stay consistent.
    world.set(atom, body.every((b) => world.get(b)) || rng.chance(0.5));
    extra.push({ kind: "rule", body, head: atom });
  }

  const original = rng.shuffle([...tree.map((n) => n.rel), ...extra]);
  const target = root.atom;
  if (entails(original, target) !== root.value || solveLI(original).values.get(target) !== root.value)
    throw new Error(`graphli seed ${seed}: solver disagrees with the generated value (bug)`);

  let premises = original;
  let trace: string;
  if (answerable) {
    const res = solveLI(original);
    trace = derivationOfLI(original, res, target)
      .map((i) => stepLI(original[i]!, [...res.via].find(([, j]) => j === i)![0], res.values))
      .join("\n");
  } else {
    const settled = solveLI(original).values;
    // A condition nobody can settle: an unsettled distractor atom if there is one, else a new atom.
    const unsettled = (): string => {
      const pool = [...world.keys()].filter((a) => !settled.has(a) && !tree.some((n) => n.atom === a));
      return pool.length > 0 && rng.chance(0.7) ? rng.pick(pool) : fresh();
    };
    let done: { premises: Premise[]; trace: string } | null = null;
    for (const broken of rng.shuffle(tree.slice())) {
      const at = original.indexOf(broken.rel);
      const r = broken.rel;
      // Built lazily: only the intervention actually tried draws an unsettled atom.
      const options: (() => Intervention)[] = [() => ({ kind: "drop" })];
      if (r.kind === "fact") {
        options.push(() => {
          const u = unsettled();
          return {
            kind: "conditional",
            premise: r.value ? { kind: "rule", body: [u], head: r.atom } : { kind: "rule", body: [r.atom], head: u },
          };
        });
      } else {
        if (r.body.length === 1) options.push(() => ({ kind: "reverse", premise: { kind: "rule", body: [r.head], head: r.body[0]! } }));
        options.push(() => {
          const u = unsettled();
          return { kind: "extra", extra: u, premise: { kind: "rule", body: rng.shuffle([...r.body, u]), head: r.head } };
        });
      }
      for (const make of rng.shuffle(options)) {
        const iv = make();
        const cand = original.slice();
        if (iv.kind === "drop") cand.splice(at, 1);
        else cand[at] = iv.premise;
        if (entails(cand, target) !== null) continue;
        done = { premises: cand, trace: unknownTraceLI(tree, broken, cand, solveLI(cand), iv) };
        break;
      }
      if (done) break;
    }
    if (!done) throw new Error(`graphli seed ${seed}: no intervention leaves the target unsettled (bug)`);
    premises = done.premises;
    trace = done.trace;
  }

  const instance: Instance = {
    id: `graphli-${seed}`,
    task: "graphli",
    prompt: formatPrompt(premises.map(sentenceLI), `Is ${target} true or false?`),
    answer: answerable ? String(root.value) : ABSTAIN,
    trace,
    depth,
    distractors,
    answerable,
    seed,
  };
  return { instance, premises, original, target, value: root.value };
}

/** Trace for an unanswerable item: settle what can be settled, name the gap, carry it up. */
function unknownTraceLI(tree: TreeNode[], broken: TreeNode, premises: Premise[], res: LIResult, iv: Intervention): string {
  const parent = new Map<string, TreeNode>();
  for (const n of tree) for (const c of n.children) parent.set(c.atom, n);
  const lines: string[] = [];
  for (const n of tree) {
    // Children of the gap are still derived: they show the premise that is there but does not apply.
    if (n === broken || !res.values.has(n.atom)) continue;
    lines.push(stepLI(premises[res.via.get(n.atom)!]!, n.atom, res.values));
  }
  const x = broken.atom;
  switch (iv.kind) {
    case "drop":
      lines.push(`No premise settles ${x}.`);
      break;
    case "extra":
      lines.push(`"${sentenceLI(iv.premise)}" needs ${iv.extra}, which is unknown, so nothing settles ${x}.`);
      break;
    default:
      lines.push(`"${sentenceLI(iv.premise)}" does not settle ${x}, and no other premise does.`);
  }
  let gap = broken;
  for (let up = parent.get(gap.atom); up; gap = up, up = parent.get(up.atom))
    lines.push(`${up.atom} needs ${gap.atom}, which is unknown.`);
  lines.push(`So ${gap.atom} cannot be determined.`);
  return lines.join("\n");
}

export function generateGraphLI(opts: GenerateOptions): Instance {
  return graphliProblem(opts).instance;
}
