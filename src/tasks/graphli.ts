// GraphLI: propositions, facts and if-then rules over literals ("If rain and not fog then not
// wind."); asks whether one proposition is true or false, or "unknown".
//
// Every item, answerable or not, is built from the same parts:
//   P  the target's derivation tree, `depth` rules; each inner node gets its value from one rule
//      and its children — modus ponens (the children are the body atoms) or modus tollens (the
//      children are the head atom and the other body atoms) — and the leaves are facts.
//   C  a "con" tree for the opposite value of the target, ungrounded: the last atom of its spine
//      has no fact. So the target is in exactly two rules, one for each value.
//   F  a free ungrounded tree that does not reach the target.
//   G  grounded distractor trees, exactly `distractors` premises, off the target.
//   B  one blocked rule per fact: a rule the fact makes vacuous (its body has the fact's atom at
//      the opposite polarity, or its head is the fact's literal), other atoms from the item,
//      never the target. Without B a fact's value would follow from its rule's form alone.
//      (A fact that is a swap partner names the other partner in its blocked rule: see below.)
// Node values are uniform; literal polarities are whatever the step needs, so they are uniform too.
//
// Unanswerable items are their answerable sibling (same seed) with ONE REFERENCE SWAP: the rule
// of P's spine node at distance `cutDepth` from the target and a rule on F's spine exchange one
// child atom (a <-> b). P above the cut then hangs on F's ungrounded part, and F's top on P's
// grounded part. The swapped children fill the same slot (rule kind, arity, head/body) with the
// same value, hence the same polarity, and both occur twice; so the swap changes no premise form,
// polarity, premise count, occurrence count or per-atom slot profile, and the intended world
// still satisfies every premise (consistency by construction). A base is kept only if a valid
// swap exists (the complete solver leaves the target unsettled after it), answerable or not, so
// answerable and unanswerable items are the same distribution up to that one swap.
// Known limit (not local, needs a graph search): the target's connected component holds one
// dead end (C's) when answerable and two (C's and F's) when not.
//
// The trace is unit propagation in sweeps over the rules, each atom annotated with its value so
// far (traceLI).

import { ABSTAIN, type GenerateOptions, type Instance } from "./types.js";
import { TaskRng, mixSeed } from "./rng.js";
import { checkOptions, formatPrompt, labelled, premiseLabels } from "./prompt.js";
import { type Literal, type Premise, atomsOf, clauseOf, entails } from "./solve-li.js";

export const GRAPHLI_MAX_DEPTH = 10;
export const GRAPHLI_MAX_DISTRACTORS = 12;

const ATOMS = [
  "rain", "wind", "fog", "snow", "hail", "mist", "frost", "storm", "cloud", "sun", "heat", "ice",
  "mud", "dew", "haze", "flood", "smoke", "dust", "sleet", "thunder", "gale", "spark", "flame",
  "ash", "steam", "glow", "echo", "dawn", "dusk", "tide", "wave", "moss", "bloom", "seed", "leaf",
  "root", "bark", "stone", "sand", "shade", "rock", "reed", "fern", "pine", "oak", "elm", "vine",
  "lake", "pond", "brook", "creek", "cliff", "hill", "dune", "reef", "pearl", "shell", "coral",
  "kelp", "foam", "spray", "drift", "gust", "breeze", "chill", "thaw", "rime", "ember", "coal",
  "soot", "smog", "rust", "clay", "peat", "silt", "flint", "marsh", "bog", "glade", "grove",
  "field", "thorn", "petal", "pollen", "honey", "wax", "horn", "plume", "nest", "acorn", "twig",
  "stem", "husk", "grain", "straw", "hay", "ripple", "squall", "vapor", "cinder",
];

// ---- sentences ---------------------------------------------------------------------------------

const lit = (l: Literal): string => (l.value ? l.atom : `not ${l.atom}`);

export function sentenceLI(p: Premise): string {
  return p.kind === "fact" ? `${p.atom} is ${p.value}.` : `If ${p.body.map(lit).join(" and ")} then ${lit(p.head)}.`;
}

/**
 * The prompt's premise lines: rules numbered in prompt order ("[3] If fog then rain."), facts
 * bare. A trace line starts with its rule's label, so the next rule to copy is found by counting
 * and one look-up of "[k]" in the prompt, not by remembering where the previous copy ended (the
 * tiny preset's largest loss without labels: 1.46 nats on the next rule's first atom after 400
 * SFT steps, 0.002 with them; held-out greedy accuracy at depths 1-2 after 1,200 steps 81 / 75%
 * without, 94 / 94% with; one seed each, results/sft-probes/li-rsweep-phr-induct.txt).
 */
export function premiseLinesLI(premises: readonly Premise[]): string[] {
  return labelled(premises.map(sentenceLI), ruleLabels(premises));
}

const ruleLabels = (premises: readonly Premise[]): string[] => premiseLabels(premises.map((p) => p.kind === "rule"));

const LIT_RE = "(?:not )?[a-z]+";
const RULE_RE = new RegExp(`^(?:\\[\\d+\\] )?If (${LIT_RE}(?: and ${LIT_RE})*) then (${LIT_RE})\\.$`);

function parseLiteral(s: string): Literal {
  return s.startsWith("not ") ? { atom: s.slice(4), value: false } : { atom: s, value: true };
}

/** Inverse of sentenceLI and of a premiseLinesLI line (tests re-solve prompts from their text). */
export function parseSentenceLI(s: string): Premise {
  let m: RegExpMatchArray | null;
  if ((m = s.match(/^([a-z]+) is (true|false)\.$/))) return { kind: "fact", atom: m[1]!, value: m[2] === "true" };
  if ((m = s.match(RULE_RE))) return { kind: "rule", body: m[1]!.split(" and ").map(parseLiteral), head: parseLiteral(m[2]!) };
  throw new Error(`not a GraphLI premise: ${JSON.stringify(s)}`);
}

// ---- trees -------------------------------------------------------------------------------------

type StepKind = "MP" | "MT";

interface TreeNode {
  atom: string;
  /** The value this node's derivation gives it. */
  value: boolean;
  /** The rule deriving it from its children, its fact (grounded leaf), or null (dead leaf). */
  premise: Premise | null;
  kind: StepKind | null;
  /** MP: the body atoms; MT: the head atom first, then the other body atoms. */
  children: TreeNode[];
  /** Index of the child on the spine, -1 when none (off the spine, or the spine's leaf). */
  spineChild: number;
}

const BINARY = 0.4;

/** The slot a child fills in its parent's rule; a swap only exchanges children of equal slots. */
const slotOf = (parent: TreeNode, k: number): string =>
  `${parent.kind}/${parent.children.length}/${parent.kind === "MT" && k === 0 ? "head" : "body"}`;

/** The rule deriving `atom` = `value` from `children` by a step of `kind`. */
function ruleFor(rng: TaskRng, kind: StepKind, atom: string, value: boolean, children: TreeNode[]): Premise {
  const l = (c: TreeNode): Literal => ({ atom: c.atom, value: c.value });
  if (kind === "MP") return { kind: "rule", body: rng.shuffle(children.map(l)), head: { atom, value } };
  const [h, ...rest] = children;
  return { kind: "rule", body: rng.shuffle([{ atom, value: !value }, ...rest.map(l)]), head: { atom: h!.atom, value: !h!.value } };
}

/**
 * A derivation tree of exactly `steps` rules for `atom` = `value`. `spine` >= 0 puts this node on
 * the spine, a path of at least `spine` more rules down to a leaf; the spine's leaf gets no fact
 * when `dead`. Every other leaf is a fact.
 */
function grow(rng: TaskRng, steps: number, value: boolean, fresh: () => string, spine: number, dead: boolean, atom = fresh()): TreeNode {
  if (steps === 0)
    return { atom, value, premise: spine >= 0 && dead ? null : { kind: "fact", atom, value }, kind: null, children: [], spineChild: -1 };
  const kind: StepKind = rng.chance(0.5) ? "MP" : "MT";
  const arity = rng.chance(BINARY) ? 2 : 1;
  const spineChild = spine >= 0 ? rng.int(0, arity - 1) : -1;
  let split = [steps - 1];
  if (arity === 2) {
    const s = rng.int(spineChild >= 0 ? Math.max(0, spine - 1) : 0, steps - 1);
    split = spineChild === 1 ? [steps - 1 - s, s] : [s, steps - 1 - s];
  }
  const children = split.map((s, k) =>
    grow(rng, s, rng.chance(0.5), fresh, k === spineChild ? Math.max(0, spine - 1) : -1, k === spineChild && dead),
  );
  return { atom, value, premise: ruleFor(rng, kind, atom, value, children), kind, children, spineChild };
}

/** A grounded tree of exactly `budget` premises (rules + facts). */
function growBudget(rng: TaskRng, budget: number, value: boolean, fresh: () => string): TreeNode {
  const atom = fresh();
  if (budget === 1) return { atom, value, premise: { kind: "fact", atom, value }, kind: null, children: [], spineChild: -1 };
  const kind: StepKind = rng.chance(0.5) ? "MP" : "MT";
  const split = budget >= 3 && rng.chance(BINARY) ? ((s) => [s, budget - 1 - s])(rng.int(1, budget - 2)) : [budget - 1];
  const children = split.map((b) => growBudget(rng, b, rng.chance(0.5), fresh));
  return { atom, value, premise: ruleFor(rng, kind, atom, value, children), kind, children, spineChild: -1 };
}

function premisesOf(n: TreeNode, out: Premise[] = []): Premise[] {
  if (n.premise) out.push(n.premise);
  for (const c of n.children) premisesOf(c, out);
  return out;
}

/**
 * One blocked rule per fact: a rule that the fact makes vacuous, either with the fact's atom in
 * its body at the opposite polarity ("If not spark and fog then rain." with spark true) or as its
 * head at the fact's own polarity ("If fog then spark."), its other atoms drawn from `atoms`. It
 * never fires and changes no label, in either sibling (facts are the same in both). Without them
 * a fact's value is a function of its rule's form (body literal: the value; head literal: its
 * negation, since a leaf gets the value its step needs), so a trace's value look-ups could be
 * written without reading the prompt. The target and the swap partners a, b are never drawn as
 * other atoms, except that a fact a's blocked rule names b: a and b then still occur equally
 * often, so the swap changes no occurrence count.
 */
function blockedRules(rng: TaskRng, facts: readonly Premise[], atoms: readonly string[], target: string, swap: { a: string; b: string }): Premise[] {
  const pool = atoms.filter((x) => x !== target && x !== swap.a && x !== swap.b);
  return facts.map((f) => {
    if (f.kind !== "fact") throw new Error("graphli: blocked rules are made for facts (bug)");
    const others = rng.shuffle(pool.filter((x) => x !== f.atom));
    if (f.atom === swap.a) others.push(swap.b); // popped first
    const other = (): Literal => {
      const atom = others.pop();
      if (atom === undefined) throw new Error("graphli: too few atoms for a blocked rule (bug)");
      return { atom, value: rng.chance(0.5) };
    };
    if (rng.chance(0.5)) {
      const body: Literal[] = [{ atom: f.atom, value: !f.value }];
      if (rng.chance(BINARY)) body.splice(rng.int(0, 1), 0, other());
      return { kind: "rule", body, head: other() };
    }
    return { kind: "rule", body: rng.chance(BINARY) ? [other(), other()] : [other()], head: { atom: f.atom, value: f.value } };
  });
}

function rename(p: Premise, from: string, to: string): Premise {
  if (p.kind === "fact") throw new Error("graphli: a swap renames a rule (bug)");
  const r = (l: Literal): Literal => (l.atom === from ? { atom: to, value: l.value } : l);
  return { kind: "rule", body: p.body.map(r), head: r(p.head) };
}

// ---- the trace ---------------------------------------------------------------------------------

/**
 * Unit propagation written out, so that every token is a copy or a decision local to its line (a
 * depth-first search's next atom and multi-premise look-ups were what small models could not
 * learn). Sweeps over the rules in prompt order; each line copies one rule whole with its label
 * (a contiguous copy, the easiest thing for attention to learn), then each of its atoms with its
 * value known so far, "true", "false" or "?" (a look-up of one "x is v" stated earlier), then
 * ", so x is v" when the rule's clause has one open literal and no satisfied one (modus ponens or
 * tollens). The trace stops with "So <target> is <value>." as soon as the target is settled; a
 * sweep that settled something is followed by "Again:" and another sweep; a sweep that settled
 * nothing ends the trace with "So <target> cannot be determined."
 *
 *   [4] If not shade then not sun: shade ?, sun true, so shade is true.
 */
export function traceLI(premises: readonly Premise[], target: string): { trace: string; value: boolean | null } {
  const known = new Map<string, boolean>();
  for (const p of premises) if (p.kind === "fact") known.set(p.atom, p.value);
  const lines: string[] = [];
  const done = (tail: string): { trace: string; value: boolean | null } => {
    lines.push(tail);
    return { trace: lines.join("\n"), value: known.get(target) ?? null };
  };
  if (known.has(target)) return done(`So ${target} is ${known.get(target)}.`);
  const labels = ruleLabels(premises);
  for (let sweep = 0; ; sweep++) {
    if (sweep > 0) lines.push("Again:");
    let changed = false;
    for (const [k, p] of premises.entries()) {
      if (p.kind !== "rule") continue;
      const values = atomsOf(p).map((a) => `${a} ${known.has(a) ? String(known.get(a)) : "?"}`);
      let line = `${labels[k]} ${sentenceLI(p).slice(0, -1)}: ${values.join(", ")}`;
      const clause = clauseOf(p);
      const open = clause.filter((l) => !known.has(l.atom));
      if (open.length === 1 && !clause.some((l) => known.get(l.atom) === l.value)) {
        known.set(open[0]!.atom, open[0]!.value);
        line += `, so ${open[0]!.atom} is ${open[0]!.value}`;
        changed = true;
      }
      lines.push(`${line}.`);
      if (known.has(target)) return done(`So ${target} is ${known.get(target)}.`);
    }
    if (!changed) return done(`So ${target} cannot be determined.`);
  }
}

// ---- generation --------------------------------------------------------------------------------

export interface GraphLIProblem {
  instance: Instance;
  /** Premises as shown in the prompt, in prompt order. */
  premises: Premise[];
  /** The answerable sibling's premises, same order (equal to `premises` when answerable). */
  original: Premise[];
  target: string;
  /** The target's value in the answerable sibling. */
  value: boolean;
  /** Distance from the target of the swapped link (hidden, but drawn, for answerable items). */
  cutDepth: number;
  /** The swap: P's child `a` and F's child `b` exchange places. */
  swap: { a: string; b: string };
}

const SALT = 0x6c69; // "li"
const SALT_G = 0x6c6947;
const SALT_B = 0x6c6942;
const MAX_ATTEMPTS = 2000;

export function graphliProblem(opts: GenerateOptions): GraphLIProblem {
  const { depth, distractors, seed } = checkOptions("graphli", opts, GRAPHLI_MAX_DEPTH, GRAPHLI_MAX_DISTRACTORS);
  if (opts.cutDepth !== undefined && (!Number.isInteger(opts.cutDepth) || opts.cutDepth < 0 || opts.cutDepth > depth - 1))
    throw new RangeError(`graphli: cutDepth must be an integer in [0, depth - 1] = [0, ${depth - 1}], got ${opts.cutDepth}`);
  const rng = new TaskRng(mixSeed(seed, SALT));
  const answerable = opts.answerable ?? rng.chance(0.5);
  // Drawn for every item so answerable and unanswerable siblings share the rest of the stream.
  const drawnCut = rng.int(0, depth - 1);
  const cutDepth = !answerable && opts.cutDepth !== undefined ? opts.cutDepth : drawnCut;
  const names = rng.shuffle(ATOMS.slice());
  let used = 0;
  const fresh = (): string => {
    if (used >= names.length) throw new RangeError("graphli: ran out of atom names; lower depth or distractors");
    return names[used++]!;
  };

  /** The accepted base, and the swap: rule `rn` becomes `rnSwapped`, rule `rf` becomes `rfSwapped`. */
  let base: { P: TreeNode; C: TreeNode; F: TreeNode; a: string; b: string; rn: Premise; rnSwapped: Premise; rf: Premise; rfSwapped: Premise } | null = null;
  for (let attempt = 0; attempt < MAX_ATTEMPTS && !base; attempt++) {
    used = 0;
    const size = (): number => rng.int(Math.max(2, depth - 1), depth + 1);
    const P = grow(rng, depth, rng.chance(0.5), fresh, cutDepth + 1, false);
    const C = grow(rng, size(), !P.value, fresh, 2, true, P.atom);
    const F = grow(rng, size(), rng.chance(0.5), fresh, 2, true);
    let n = P;
    for (let k = 0; k < cutDepth; k++) n = n.children[n.spineChild]!;
    // Swap partners: a child of n, and a child b on F's spine that is itself a rule's atom (b
    // occurs twice, like a), in an equal slot, with an equal value.
    const pairs: { ka: number; fp: TreeNode; kb: number }[] = [];
    for (let fp = F; fp.spineChild >= 0; fp = fp.children[fp.spineChild]!) {
      const kb = fp.spineChild;
      const b = fp.children[kb]!;
      if (b.children.length === 0) break;
      n.children.forEach((a, ka) => {
        if (slotOf(n, ka) === slotOf(fp, kb) && a.value === b.value) pairs.push({ ka, fp, kb });
      });
    }
    if (pairs.length === 0) continue;
    const core = premisesOf(P).concat(premisesOf(C), premisesOf(F));
    if (entails(core, P.atom) !== P.value) throw new Error(`graphli seed ${seed}: solver disagrees with the generated value (bug)`);
    for (const { ka, fp, kb } of rng.shuffle(pairs)) {
      const a = n.children[ka]!.atom;
      const b = fp.children[kb]!.atom;
      const rn = rename(n.premise!, a, b);
      const rf = rename(fp.premise!, b, a);
      const swapped = core.map((p) => (p === n.premise ? rn : p === fp.premise ? rf : p));
      if (entails(swapped, P.atom) !== null) continue;
      base = { P, C, F, a, b, rn: n.premise!, rnSwapped: rn, rf: fp.premise!, rfSwapped: rf };
      break;
    }
  }
  if (!base) throw new Error(`graphli seed ${seed}: no valid swap after ${MAX_ATTEMPTS} attempts (bug)`);
  const { P, C, F, a, b, rn, rnSwapped, rf, rfSwapped } = base;
  const target = P.atom;

  // Grounded distractors from their own stream: changing `distractors` changes nothing else.
  const grng = new TaskRng(mixSeed(seed, SALT_G));
  const extra: Premise[] = [];
  for (let left = distractors; left > 0; ) {
    const size = Math.min(left, grng.int(2, depth + 2));
    premisesOf(growBudget(grng, size, grng.chance(0.5), fresh), extra);
    left -= size;
  }

  const original = rng.shuffle([...premisesOf(P), ...premisesOf(C), ...premisesOf(F), ...extra]);
  // Blocked rules from their own stream, at random places (the same in both siblings).
  const brng = new TaskRng(mixSeed(seed, SALT_B));
  const atoms = [...new Set(original.flatMap(atomsOf))];
  for (const r of blockedRules(brng, original.filter((p) => p.kind === "fact"), atoms, target, { a, b })) original.splice(brng.int(0, original.length), 0, r);
  const premises = answerable ? original : original.map((p) => (p === rn ? rnSwapped : p === rf ? rfSwapped : p));

  const label = entails(premises, target);
  if (entails(original, target) !== P.value || label !== (answerable ? P.value : null))
    throw new Error(`graphli seed ${seed}: solver disagrees with the generated label (bug)`);
  const { trace, value } = traceLI(premises, target);
  if (value !== label) throw new Error(`graphli seed ${seed}: the trace search disagrees with the solver (bug)`);

  const instance: Instance = {
    id: `graphli-${seed}`,
    task: "graphli",
    prompt: formatPrompt(premiseLinesLI(premises), `Is ${target} true or false?`),
    answer: label === null ? ABSTAIN : String(label),
    trace,
    depth,
    distractors,
    answerable,
    seed,
  };
  return { instance, premises, original, target, value: P.value, cutDepth, swap: { a, b } };
}

export function generateGraphLI(opts: GenerateOptions): Instance {
  return graphliProblem(opts).instance;
}
