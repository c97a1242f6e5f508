import { describe, expect, test } from "vitest";
import {
  ABSTAIN,
  completionFor,
  generate,
  generateDataset,
  graphlaProblem,
  graphliProblem,
  splitPrompt,
  taskCorpus,
  TASK_NAMES,
  type Instance,
} from "../src/tasks/index.js";
import { parseSentenceLA, premiseLinesLA, sentenceLA } from "../src/tasks/graphla.js";
import { parseSentenceLI, premiseLinesLI, sentenceLI } from "../src/tasks/graphli.js";
import { type Relation, dishesOf, feq, fstr, solveExact, solveForward } from "../src/tasks/solve-la.js";
import { type Premise, atomsOf, clauseOf, entails, solveLI } from "../src/tasks/solve-li.js";
import { judge } from "../src/tasks/verify.js";
import { RewardPool } from "../src/rewards/pool.js";

const laTarget = (q: string): string => q.match(/^How much does ([A-Z][a-z]+) cost\?$/)![1]!;
const liTarget = (q: string): string => q.match(/^Is ([a-z]+) true or false\?$/)![1]!;

/** A GraphLI sweep trace's rule lines: the rule as in the prompt, the values written after it
 * ("x true", "x false", "x ?" for each atom) and what the line settles. */
interface SweepLine {
  rule: string;
  notes: Map<string, boolean | null>;
  settles: { atom: string; value: boolean } | null;
}
function liSweeps(trace: string): { sweeps: SweepLine[][]; last: string } {
  const lines = trace.split("\n");
  const last = lines.pop()!;
  const sweeps: SweepLine[][] = [[]];
  for (const line of lines) {
    if (line === "Again:") {
      sweeps.push([]);
      continue;
    }
    const m = line.match(/^(\[\d+\] If [^:]*): ((?:[a-z]+ (?:true|false|\?))(?:, [a-z]+ (?:true|false|\?))*)(?:, so ([a-z]+) is (true|false))?\.$/);
    if (!m) throw new Error(`not a sweep line: ${JSON.stringify(line)}`);
    const notes = new Map<string, boolean | null>();
    for (const pair of m[2]!.split(", ")) {
      const [atom, v] = pair.split(" ");
      notes.set(atom!, v === "?" ? null : v === "true");
    }
    const settles = m[3] ? { atom: m[3], value: m[4] === "true" } : null;
    sweeps[sweeps.length - 1]!.push({ rule: `${m[1]}.`, notes, settles });
  }
  return { sweeps, last };
}

/** Inference steps under the target's value in a sweep trace: a fact is 0, an atom settled by a
 * rule is one more than the deepest other atom of that rule. */
function liDerivationDepth(trace: string, target: string): number {
  const by = new Map<string, string[]>();
  for (const l of liSweeps(trace).sweeps.flat()) if (l.settles) by.set(l.settles.atom, [...l.notes.keys()].filter((a) => a !== l.settles!.atom));
  const depth = (a: string): number => (by.has(a) ? 1 + Math.max(...by.get(a)!.map(depth)) : 0);
  return depth(target);
}

/** A GraphLA sweep trace's premise lines: the premise as in the prompt, the prices written after
 * it ("Tea 5" or "Tea ?" for each dish), the partner premise a system line quotes ("with ...") and
 * what the line prices, with the expression over numbers it writes. */
interface LaLine {
  premise: string;
  notes: Map<string, string | null>;
  with: string | null;
  settles: { dish: string; expr: string; value: string } | null;
}
function laSweeps(trace: string): { sweeps: LaLine[][]; last: string } {
  const lines = trace.split("\n");
  const last = lines.pop()!;
  const sweeps: LaLine[][] = [[]];
  const note = "[A-Z][a-z]+ (?:-?\\d+(?:/\\d+)?|\\?)";
  const re = new RegExp(`^(\\[\\d+\\] [A-Z][^:]*): (${note}(?:, ${note})*)(?:, with (\\[\\d+\\] [^,]*))?(?:, so ([A-Z][a-z]+) = ([-+*/() \\d]+) = (-?\\d+(?:/\\d+)?))?\\.$`);
  for (const line of lines) {
    if (line === "Again:") {
      sweeps.push([]);
      continue;
    }
    const m = line.match(re);
    if (!m) throw new Error(`not a sweep line: ${JSON.stringify(line)}`);
    const notes = new Map<string, string | null>();
    for (const pair of m[2]!.split(", ")) {
      const [dish, v] = pair.split(" ");
      notes.set(dish!, v === "?" ? null : v!);
    }
    const settles = m[4] ? { dish: m[4], expr: m[5]!, value: m[6]! } : null;
    sweeps[sweeps.length - 1]!.push({ premise: `${m[1]}.`, notes, with: m[3] ? `${m[3]}.` : null, settles });
  }
  return { sweeps, last };
}

/** Relation steps under the target's price in a GraphLA sweep trace: a given price or a system
 * member is 0 (a system is a leaf), a dish priced by a line is one more than its deepest other dish. */
function laDerivationDepth(trace: string, target: string, rels: Relation[]): number {
  const lines = laSweeps(trace).sweeps.flat();
  const leaf = new Set(rels.filter((r) => r.kind === "given").map((r) => r.x));
  for (const l of lines) if (l.with) for (const d of l.notes.keys()) leaf.add(d);
  const by = new Map<string, string[]>();
  for (const l of lines) if (l.settles) by.set(l.settles.dish, [...l.notes.keys()].filter((d) => d !== l.settles!.dish));
  const depth = (d: string): number => (leaf.has(d) ? 0 : 1 + Math.max(...by.get(d)!.map(depth)));
  return depth(target);
}

const mixed = (task: "graphla" | "graphli", n = 240, seed = 7): Instance[] =>
  generateDataset(task, { n, depth: [1, 6], seed, distractors: [0, 6] });

describe.each(TASK_NAMES)("%s generation", (task) => {
  test("is deterministic from the seed", () => {
    const a = generate(task, { depth: 4, seed: 123 });
    expect(generate(task, { depth: 4, seed: 123 })).toEqual(a);
    expect(generate(task, { depth: 4, seed: 124 }).prompt).not.toBe(a.prompt);
    const d1 = generateDataset(task, { n: 20, depth: [1, 6], seed: 5 });
    expect(generateDataset(task, { n: 20, depth: [1, 6], seed: 5 })).toEqual(d1);
    expect(generateDataset(task, { n: 20, depth: [1, 6], seed: 6 }).map((i) => i.prompt)).not.toEqual(d1.map((i) => i.prompt));
    expect(a.id).toBe(`${task}-123`);
  });

  test("datasets are exactly half unanswerable", () => {
    for (const n of [2, 10, 64]) {
      const d = generateDataset(task, { n, depth: 3, seed: n });
      expect(d.filter((i) => i.answerable).length).toBe(n / 2);
      for (const i of d) expect(i.answer === ABSTAIN).toBe(!i.answerable);
    }
    const odd = generateDataset(task, { n: 7, depth: 2, seed: 1 }).filter((i) => i.answerable).length;
    expect([3, 4]).toContain(odd);
    // Without forcing, the seed decides, roughly half and half.
    const free = Array.from({ length: 200 }, (_, s) => generate(task, { depth: 2, seed: s }).answerable);
    const frac = free.filter(Boolean).length / free.length;
    expect(frac).toBeGreaterThan(0.35);
    expect(frac).toBeLessThan(0.65);
  });

  test("depth and distractor knobs change instances", () => {
    const base = generate(task, { depth: 3, distractors: 0, seed: 9, answerable: true });
    const more = generate(task, { depth: 3, distractors: 5, seed: 9, answerable: true });
    const deeper = generate(task, { depth: 6, distractors: 0, seed: 9, answerable: true });
    const count = (i: Instance) => splitPrompt(i.prompt).premises.length;
    // (GraphLA raises fewer than MIN_DISTRACTORS to it: every item carries a free chain. GraphLI
    // adds one blocked rule per fact, so its distractors' facts bring one premise more each.)
    const facts = (i: Instance) => (task === "graphli" ? splitPrompt(i.prompt).premises.filter((s) => / is (true|false)\.$/.test(s)).length : 0);
    expect(count(more) - count(base)).toBe(more.distractors - base.distractors + facts(more) - facts(base));
    expect(count(deeper)).toBeGreaterThan(count(base));
    expect(more.distractors).toBe(5);
    expect(deeper.depth).toBe(6);
    if (task === "graphla") {
      // Ground truth uses exactly `depth` relation steps (system solutions aside).
      for (const i of [base, more, deeper]) {
        const { premises, question } = splitPrompt(i.prompt);
        expect(laDerivationDepth(i.trace, laTarget(question), premises.map(parseSentenceLA))).toBe(i.depth);
      }
    } else {
      // The target is exactly `depth` inference steps above the facts.
      for (const i of [base, more, deeper]) expect(liDerivationDepth(i.trace, liTarget(splitPrompt(i.prompt).question))).toBe(i.depth);
    }
  });

  test("prompts stay short for small depths", () => {
    // GraphLI items carry a con tree, a free tree and a blocked rule per fact besides the
    // derivation: longer prompts.
    const limit = task === "graphli" ? 1800 : 900;
    for (const i of generateDataset(task, { n: 100, depth: [1, 6], seed: 3 })) expect(i.prompt.length).toBeLessThan(limit);
  });

  test("rejects bad options with the option name", () => {
    expect(() => generate(task, { depth: 0, seed: 1 })).toThrow(/depth/);
    expect(() => generate(task, { depth: 2, seed: -1 })).toThrow(/seed/);
    expect(() => generate(task, { depth: 2, distractors: 1.5, seed: 1 })).toThrow(/distractors/);
    expect(() => generateDataset(task, { n: 2, depth: [4, 2], seed: 1 })).toThrow(/depth/);
  });

  test("every ground-truth completion gets full reward", async () => {
    const data = mixed(task, 80, 11);
    const pool = await RewardPool.create({ rewards: [{ name: "honesty", weight: 1 }, { name: "correct", weight: 1 }, { name: "format", weight: 1 }] });
    const res = await pool.scoreBatch(data, data.map(completionFor));
    await pool.close();
    for (const d of res.details) expect(d.components).toEqual({ honesty: 1, correct: 1, format: 1 });
    for (const [k, inst] of data.entries()) expect(judge(inst, completionFor(inst)).abstained).toBe(!data[k]!.answerable);
  });

  test("taskCorpus holds prompts and completions", () => {
    const c = taskCorpus(task, 10);
    expect(c.length).toBe(20);
    expect(c[1]).toMatch(/^<think>[\s\S]*<\/think><answer>.*<\/answer>$/);
  });
});

describe("graphla solver", () => {
  /** Sibling items: same seed, forced answerable and unanswerable. */
  const siblings = (n: number, opts: { cutDepth?: number } = {}) =>
    Array.from({ length: n }, (_, seed) => {
      const depth = 1 + (seed % 6);
      return { un: graphlaProblem({ depth, seed, answerable: false, ...opts }), an: graphlaProblem({ depth, seed, answerable: true, ...opts }) };
    });

  test("the prompt text alone determines the answer, or provably does not", () => {
    let forwardSolved = 0;
    for (const inst of mixed("graphla")) {
      const { premises, question } = splitPrompt(inst.prompt);
      const rels = premises.map(parseSentenceLA);
      expect(premiseLinesLA(rels)).toEqual(premises);
      const target = laTarget(question);
      const fw = solveForward(rels);
      const ex = solveExact(rels);
      expect(fw.consistent && ex.consistent).toBe(true);
      // Forward chaining, where it finds a price, agrees with elimination.
      for (const [d, v] of fw.values) expect(feq(ex.values.get(d)!, v)).toBe(true);
      if (inst.answerable) {
        expect(fstr(ex.values.get(target)!)).toBe(inst.answer);
        expect(Number(inst.answer)).toBeGreaterThan(0);
        expect(Number(inst.answer)).toBeLessThan(1000);
        if (fw.values.has(target)) forwardSolved++;
      } else {
        expect(fw.values.has(target)).toBe(false);
        expect(ex.values.has(target)).toBe(false);
      }
    }
    expect(forwardSolved).toBeGreaterThan(50);
  });

  test("an unanswerable item is its answerable sibling with one reference swap", () => {
    for (const { un, an } of siblings(120)) {
      expect(un.original).toEqual(an.premises);
      expect(un.target).toBe(an.target);
      expect(fstr(solveExact(an.premises).values.get(an.target)!)).toBe(String(an.value));
      expect(solveExact(un.premises).values.has(un.target)).toBe(false);
      const changed = un.premises.flatMap((r, k) => (sentenceLA(r) === sentenceLA(an.premises[k]!) ? [] : [k]));
      expect(changed).toEqual([...un.swapped!].sort((a, b) => a - b));
      // Each changed premise keeps its form and numbers; the two exchange one dish name.
      const [i, j] = un.swapped!;
      const before = [an.premises[i]!, an.premises[j]!];
      const after = [un.premises[i]!, un.premises[j]!];
      for (const k of [0, 1]) {
        expect({ ...after[k]!, y: "", z: "" }).toEqual({ ...before[k]!, y: "", z: "" });
        const gone = dishesOf(before[k]!).filter((d) => !dishesOf(after[k]!).includes(d));
        const came = dishesOf(after[k]!).filter((d) => !dishesOf(before[k]!).includes(d));
        expect(gone.length).toBe(1);
        expect(came).toEqual(dishesOf(before[1 - k]!).filter((d) => !dishesOf(after[1 - k]!).includes(d)));
        expect(new Set(dishesOf(after[k]!)).size).toBe(dishesOf(after[k]!).length); // no self-reference
      }
      // The world stays sane: whatever the swap grounds is a positive integer price.
      for (const v of solveExact(un.premises).values.values()) expect(v.d === 1n && v.n > 0n && v.n <= 999n).toBe(true);
    }
  });

  test("answerable and unanswerable items look alike, by construction", () => {
    // The parts are drawn before the label is looked at: a free item's answerable sibling is the
    // same draw, whatever label the seed picked.
    for (let seed = 0; seed < 40; seed++) {
      const free = graphlaProblem({ depth: 3, seed });
      expect(free.original).toEqual(graphlaProblem({ depth: 3, seed, answerable: true }).premises);
      expect(free.original).toEqual(graphlaProblem({ depth: 3, seed, answerable: false }).original);
    }
    // Each premise with its dishes replaced by role and occurrence count, numbers kept ("T1 costs
    // 3 more than D2."): the sorted multisets are equal for siblings, so premise counts, relation
    // forms, numbers and the occurrence-count histogram are identically distributed.
    const shapes = (p: { premises: Relation[]; target: string }): string[] => {
      const count = new Map<string, number>();
      for (const r of p.premises) for (const d of dishesOf(r)) count.set(d, (count.get(d) ?? 0) + 1);
      return p.premises.map((r) => sentenceLA(r).replace(/[A-Z][a-z]+/g, (d) => `${d === p.target ? "T" : "D"}${count.get(d)}`)).sort();
    };
    for (const { un, an } of siblings(300)) expect(shapes(un)).toEqual(shapes(an));
  });

  test("systems appear and only elimination solves them", () => {
    let withSystem = 0;
    let derivationNeedsSystem = 0;
    for (let seed = 0; seed < 500; seed++) {
      const p = graphlaProblem({ depth: 1 + (seed % 6), seed, answerable: true });
      if (p.premises.some((r) => r.kind === "total")) withSystem++;
      if (solveForward(p.premises).values.has(p.target)) continue;
      derivationNeedsSystem++;
      // The trace solves the system on its "together" line, quoting the linking premise.
      expect(p.instance.trace).toMatch(/, with [^\n]*, so [A-Z][a-z]+ = \(\d+ [-+] \d+\)\/2 = \d+\./);
      expect(fstr(solveExact(p.premises).values.get(p.target)!)).toBe(p.instance.answer);
    }
    expect(withSystem).toBeGreaterThan(150);
    expect(derivationNeedsSystem).toBeGreaterThan(100);
  });

  test("exact elimination finds values forward chaining cannot", () => {
    // A + B = 10 and A + 2B = 14 (written as relations): only elimination gives A = 6, B = 4.
    const rels = [
      { kind: "total", x: "A", y: "B", value: 10 },
      { kind: "affine", x: "C", y: "B", a: 2, b: 0 },
      { kind: "sum", x: "Fourteen", y: "A", z: "C" },
      { kind: "given", x: "Fourteen", value: 14 },
    ] as const;
    expect(solveForward([...rels]).values.has("A")).toBe(false);
    expect(fstr(solveExact([...rels]).values.get("A")!)).toBe("6");
    expect(fstr(solveExact([...rels]).values.get("B")!)).toBe("4");
  });

  test("cutDepth places the swap and is validated", () => {
    for (let depth = 1; depth <= 6; depth++)
      for (let cut = 0; cut < depth; cut++) {
        const un = graphlaProblem({ depth, seed: 40 + cut, answerable: false, cutDepth: cut });
        expect(un.cutDepth).toBe(cut);
        // Distance from the target of the swapped derivation premise's subject, in the original.
        const defining = new Map(un.original.filter((r) => r.kind !== "given" && r.kind !== "total").map((r) => [r.x, r]));
        const dist = new Map([[un.target, 0]]);
        for (const queue = [un.target]; queue.length > 0; ) {
          const x = queue.shift()!;
          for (const y of dishesOf(defining.get(x) ?? { kind: "given", x, value: 0 }).slice(1))
            if (!dist.has(y)) dist.set(y, dist.get(x)! + 1), queue.push(y);
        }
        expect(dist.get(un.original[un.swapped![0]]!.x)).toBe(cut);
      }
    expect(() => graphlaProblem({ depth: 3, seed: 1, answerable: false, cutDepth: 3 })).toThrow(/cutDepth/);
    expect(() => graphlaProblem({ depth: 3, seed: 1, answerable: false, cutDepth: -1 })).toThrow(/cutDepth/);
    expect(() => graphlaProblem({ depth: 3, seed: 1, answerable: false, cutDepth: 0.5 })).toThrow(/cutDepth/);
  });

  test("every trace line is a correct step and the last one is the answer", () => {
    let checked = 0;
    let systems = 0;
    for (const inst of mixed("graphla", 120, 21)) {
      const { premises, question } = splitPrompt(inst.prompt);
      const rels = premises.map(parseSentenceLA);
      const target = laTarget(question);
      const ex = solveExact(rels);
      const copied = premises.filter((_, k) => rels[k]!.kind !== "given");
      // What is known before each line: the prompt's prices, then what earlier lines priced.
      const known = new Map<string, string>();
      for (const r of rels) if (r.kind === "given") known.set(r.x, String(r.value));
      const { sweeps, last } = laSweeps(inst.trace);
      for (const [k, sweep] of sweeps.entries()) {
        // Each sweep copies the non-given premises in prompt order; only the last may stop early.
        expect(sweep.map((l) => l.premise)).toEqual(k === sweeps.length - 1 ? copied.slice(0, sweep.length) : copied);
        for (const l of sweep) {
          const r = parseSentenceLA(l.premise);
          // Every dish in the order the sentence names it, with its price so far.
          expect([...l.notes.keys()]).toEqual(l.premise.match(/[A-Z][a-z]+/g));
          expect([...l.notes.keys()].sort()).toEqual(dishesOf(r).sort());
          for (const d of l.notes.keys()) expect(l.notes.get(d)).toBe(known.get(d) ?? null);
          const open = dishesOf(r).filter((d) => !known.has(d));
          // A system line quotes the one premise linking its two unpriced dishes.
          const link = rels.find((q) => q.kind === "affine" && q.a === 1 && r.kind === "total" && new Set([q.x, q.y, r.x, r.y]).size === 2);
          const system = r.kind === "total" && open.length === 2 && link !== undefined;
          expect(l.with).toBe(system ? premises[rels.indexOf(link!)]! : null);
          if (open.length === 1 || system) {
            expect(l.settles?.dish).toBe(open[0]);
            // The expression is over numbers (the prices so far) and has the written value, the entailed one.
            expect(l.settles!.expr).not.toMatch(/[A-Za-z]/);
            expect(fstr(ex.values.get(l.settles!.dish)!)).toBe(l.settles!.value);
            expect(String(Function(`return (${l.settles!.expr})`)())).toBe(l.settles!.value);
            known.set(l.settles!.dish, l.settles!.value);
            if (system) systems++;
          } else expect(l.settles).toBeNull();
          checked++;
        }
        // "Again:" follows a sweep that priced something; the trace ends at a sweep that priced
        // nothing or as soon as the target is priced.
        if (k < sweeps.length - 1) expect(sweep.some((l) => l.settles)).toBe(true);
      }
      if (!inst.answerable) {
        expect(last).toBe(`So ${target} cannot be determined.`);
        expect(sweeps[sweeps.length - 1]!.some((l) => l.settles)).toBe(false);
        expect(ex.values.has(target)).toBe(false);
        continue;
      }
      expect(last).toBe(`So ${target} costs ${inst.answer}.`);
      expect(known.get(target)).toBe(inst.answer);
      expect(sweeps.flat().at(-1)!.settles?.dish).toBe(target);
    }
    expect(checked).toBeGreaterThan(1000);
    expect(systems).toBeGreaterThan(5);
  });
});

describe("graphli solver", () => {
  test("the prompt text alone entails the answer, or provably does not", () => {
    for (const inst of mixed("graphli")) {
      const { premises, question } = splitPrompt(inst.prompt);
      const ps = premises.map(parseSentenceLI);
      expect(premiseLinesLI(ps)).toEqual(premises);
      const target = liTarget(question);
      const e = entails(ps, target);
      expect(e === null ? ABSTAIN : String(e)).toBe(inst.answer);
    }
  });

  test("entails is complete where unit propagation is not", () => {
    // Horn, but propagation stalls: x -> a, x -> b, a and b -> c, not c; so not x.
    const horn = ["If x then a.", "If x then b.", "If a and b then c.", "c is false."].map(parseSentenceLI);
    expect(solveLI(horn).values.has("x")).toBe(false);
    expect(entails(horn, "x")).toBe(false);
    expect(entails(horn, "a")).toBe(null);
    // Not Horn: a follows by cases on b.
    const cases = ["If not a then b.", "If not a then not b."].map(parseSentenceLI);
    expect(solveLI(cases).values.has("a")).toBe(false);
    expect(entails(cases, "a")).toBe(true);
    expect(() => entails([...cases, ...["If a then b.", "If a then not b."].map(parseSentenceLI)], "a")).toThrow(/inconsistent/);
    // Propagation with polarities: modus ponens and modus tollens, both values.
    const mp = ["If not b then not x.", "b is false."].map(parseSentenceLI);
    expect(solveLI(mp).values.get("x")).toBe(false);
    const mt = ["If not x then h.", "h is false."].map(parseSentenceLI);
    expect(solveLI(mt).values.get("x")).toBe(true);
  });

  test("an unanswerable item is its answerable sibling with one reference swap", () => {
    for (let seed = 0; seed < 120; seed++) {
      const depth = 1 + (seed % 6);
      const un = graphliProblem({ depth, seed, answerable: false });
      const an = graphliProblem({ depth, seed, answerable: true });
      expect(un.original).toEqual(an.premises);
      expect(entails(an.premises, an.target)).toBe(an.value);
      expect(entails(un.premises, un.target)).toBe(null);
      const changed = un.premises.flatMap((p, k) => (sentenceLI(p) === sentenceLI(an.premises[k]!) ? [] : [k]));
      expect(changed.length).toBe(2);
      const { a, b } = un.swap;
      const swapBack = (s: string): string => s.replace(/[a-z]+/g, (w) => (w === a ? b : w === b ? a : w));
      for (const k of changed) expect(swapBack(sentenceLI(un.premises[k]!))).toBe(sentenceLI(an.premises[k]!));
      // No self-loops: no rule mentions an atom twice.
      for (const p of un.premises) expect(new Set(atomsOf(p)).size).toBe(atomsOf(p).length);
    }
  });

  test("answerable and unanswerable items look alike: forms, polarities and occurrence counts", () => {
    // Each premise with its atoms replaced by role and occurrence count ("If not T2 and A1 then
    // A2."): the sorted multiset is the same for the two siblings, so premise counts, rule forms,
    // literal polarities and the occurrence-count histogram are identically distributed.
    const shapes = (p: { premises: Premise[]; target: string }): string[] => {
      const count = new Map<string, number>();
      for (const q of p.premises) for (const x of atomsOf(q)) count.set(x, (count.get(x) ?? 0) + 1);
      return p.premises
        .map((q) => sentenceLI(q).replace(/[a-z]+/g, (w) => (count.has(w) && !["not", "and", "then", "is", "true", "false"].includes(w) ? `${w === p.target ? "T" : "A"}${count.get(w)}` : w)))
        .sort();
    };
    for (let seed = 0; seed < 300; seed++) {
      const depth = 1 + (seed % 6);
      const un = graphliProblem({ depth, seed, answerable: false });
      const an = graphliProblem({ depth, seed, answerable: true });
      expect(shapes(un)).toEqual(shapes(an));
    }
  });

  test("a fact's value does not follow from the form of the rules it is in", () => {
    // Derivations give each leaf the value its step needs (a body literal that is true, a head
    // literal that is false); the blocked rules (one per fact) break that, so a trace's value
    // look-up has to read the fact. Over all rule occurrences of facts, a literal's polarity
    // matches the fact's value about half the time, in bodies and in heads alike.
    const agree = { body: [0, 0], head: [0, 0] };
    for (let seed = 0; seed < 600; seed++) {
      const { premises } = graphliProblem({ depth: 1 + (seed % 6), seed });
      const facts = new Map(premises.flatMap((p) => (p.kind === "fact" ? [[p.atom, p.value] as const] : [])));
      for (const p of premises) {
        if (p.kind !== "rule") continue;
        for (const [where, l] of [...p.body.map((l) => ["body", l] as const), ["head", p.head] as const])
          if (facts.has(l.atom)) (agree[where][0] += l.value === facts.get(l.atom) ? 1 : 0), agree[where][1]++;
      }
    }
    for (const [hits, n] of Object.values(agree)) {
      expect(n).toBeGreaterThan(500);
      expect(hits / n).toBeGreaterThan(0.3);
      expect(hits / n).toBeLessThan(0.7);
    }
  });

  test("modus ponens and modus tollens both give true and false answers", () => {
    const seen = new Map<string, number>();
    for (let seed = 0; seed < 500; seed++) {
      const p = graphliProblem({ depth: 1 + (seed % 6), seed, answerable: true });
      // The rule that settles the target: the trace's line that says so.
      const line = liSweeps(p.instance.trace).sweeps.flat().find((l) => l.settles?.atom === p.target)!;
      const rule = p.premises[premiseLinesLI(p.premises).indexOf(line.rule)] as Extract<Premise, { kind: "rule" }>;
      const kind = rule.head.atom === p.target ? "MP" : "MT";
      const key = `${kind} ${p.instance.answer}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
    for (const key of ["MP true", "MP false", "MT true", "MT false"]) expect(seen.get(key) ?? 0).toBeGreaterThan(80);
  });

  test("cutDepth places the swap and is validated", () => {
    for (let depth = 1; depth <= 6; depth++)
      for (let cut = 0; cut < depth; cut++) {
        const un = graphliProblem({ depth, seed: 40 + cut, answerable: false, cutDepth: cut });
        expect(un.cutDepth).toBe(cut);
        expect(entails(un.premises, un.target)).toBe(null);
        // Distance of the swapped rule of P from the target, along the original derivation.
        const res = solveLI(un.original);
        const dist = new Map<number, number>([[res.via.get(un.target)!, 0]]);
        for (const x of res.order.slice().reverse()) {
          const k = res.via.get(x)!;
          if (!dist.has(k)) continue;
          for (const y of atomsOf(un.original[k]!)) if (y !== x && res.via.has(y)) dist.set(res.via.get(y)!, dist.get(k)! + 1);
        }
        const swappedP = un.premises.findIndex((q, k) => sentenceLI(q) !== sentenceLI(un.original[k]!) && dist.has(k));
        expect(dist.get(swappedP)).toBe(cut);
      }
    expect(() => graphliProblem({ depth: 3, seed: 1, answerable: false, cutDepth: 3 })).toThrow(/cutDepth/);
    expect(() => graphliProblem({ depth: 3, seed: 1, answerable: false, cutDepth: -1 })).toThrow(/cutDepth/);
    expect(() => graphliProblem({ depth: 3, seed: 1, answerable: false, cutDepth: 0.5 })).toThrow(/cutDepth/);
  });

  test("every trace line is a correct step and the last one is the answer", () => {
    let checked = 0;
    for (const inst of mixed("graphli", 120, 21)) {
      const { premises, question } = splitPrompt(inst.prompt);
      const ps = premises.map(parseSentenceLI);
      const target = liTarget(question);
      const rules = premises.filter((_, k) => ps[k]!.kind === "rule");
      // What is known before each line: the prompt's facts, then what earlier lines settled.
      const known = new Map<string, boolean>();
      for (const q of ps) if (q.kind === "fact") known.set(q.atom, q.value);
      const { sweeps, last } = liSweeps(inst.trace);
      for (const [k, sweep] of sweeps.entries()) {
        // Each sweep copies the rules in prompt order; only the last may stop early (target settled).
        expect(sweep.map((l) => l.rule)).toEqual(k === sweeps.length - 1 ? rules.slice(0, sweep.length) : rules);
        for (const l of sweep) {
          const q = parseSentenceLI(l.rule);
          expect([...l.notes.keys()]).toEqual(atomsOf(q));
          for (const a of atomsOf(q)) expect(l.notes.get(a)).toBe(known.get(a) ?? null);
          const clause = clauseOf(q);
          const open = clause.filter((x) => !known.has(x.atom));
          const unit = open.length === 1 && !clause.some((x) => known.get(x.atom) === x.value);
          expect(l.settles).toEqual(unit ? { atom: open[0]!.atom, value: open[0]!.value } : null);
          if (l.settles) {
            expect(entails(ps, l.settles.atom)).toBe(l.settles.value);
            known.set(l.settles.atom, l.settles.value);
          }
          checked++;
        }
        // "Again:" follows a sweep that settled something; the trace ends at a sweep that settled
        // nothing or as soon as the target is settled.
        if (k < sweeps.length - 1) expect(sweep.some((l) => l.settles)).toBe(true);
      }
      if (!inst.answerable) {
        expect(last).toBe(`So ${target} cannot be determined.`);
        expect(sweeps[sweeps.length - 1]!.some((l) => l.settles)).toBe(false);
        continue;
      }
      expect(last).toBe(`So ${target} is ${inst.answer}.`);
      expect(known.get(target)).toBe(inst.answer === "true");
      expect(sweeps.flat().at(-1)!.settles?.atom).toBe(target);
    }
    expect(checked).toBeGreaterThan(1000);
  });
});
