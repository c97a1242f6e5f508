import { describe, expect, test } from "vitest";
import {
  ABSTAIN,
  completionFor,
  generate,
  generateDataset,
  graphlaProblem,
  graphliProblem,
  taskCorpus,
  TASK_NAMES,
  type Instance,
} from "../src/tasks/index.js";
import { parseSentenceLA } from "../src/tasks/graphla.js";
import { parseSentenceLI } from "../src/tasks/graphli.js";
import { feq, frac, fstr, solveExact, solveForward } from "../src/tasks/solve-la.js";
import { entails, solveLI } from "../src/tasks/solve-li.js";
import { judge } from "../src/tasks/verify.js";
import { RewardPool } from "../src/rewards/pool.js";

/** Premise sentences and question, read back from the prompt text. */
function splitPrompt(prompt: string): { premises: string[]; question: string } {
  const m = prompt.match(/^Premises:\n([\s\S]*)\nQuestion: (.*)\n/);
  if (!m) throw new Error(`unexpected prompt layout:\n${prompt}`);
  return { premises: m[1]!.split("\n"), question: m[2]! };
}

const laTarget = (q: string): string => q.match(/^How much does ([A-Z][a-z]+) cost\?$/)![1]!;
const liTarget = (q: string): string => q.match(/^Is ([a-z]+) true or false\?$/)![1]!;

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
    expect(count(more)).toBe(count(base) + 5);
    expect(count(deeper)).toBeGreaterThan(count(base));
    expect(more.distractors).toBe(5);
    expect(deeper.depth).toBe(6);
    // Ground truth uses exactly `depth` inference steps (non-given trace lines).
    for (const i of [base, more, deeper]) expect(i.trace.split("\n").filter((l) => !l.endsWith("(given).")).length).toBe(i.depth);
    // All distractors are off the derivation: every other premise is used by the trace.
    for (const i of [base, more, deeper]) expect(count(i) - i.distractors).toBe(i.trace.split("\n").length);
  });

  test("prompts stay short for small depths", () => {
    for (const i of generateDataset(task, { n: 100, depth: [1, 6], seed: 3 })) expect(i.prompt.length).toBeLessThan(900);
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
  test("the prompt text alone determines the answer, or provably does not", () => {
    for (const inst of mixed("graphla")) {
      const { premises, question } = splitPrompt(inst.prompt);
      const rels = premises.map(parseSentenceLA);
      const target = laTarget(question);
      const fw = solveForward(rels);
      const ex = solveExact(rels);
      expect(fw.consistent && ex.consistent).toBe(true);
      if (inst.answerable) {
        expect(fstr(fw.values.get(target)!)).toBe(inst.answer);
        expect(fstr(ex.values.get(target)!)).toBe(inst.answer);
        expect(Number(inst.answer)).toBeLessThan(1000);
      } else {
        expect(fw.values.has(target)).toBe(false);
        expect(ex.values.has(target)).toBe(false);
      }
    }
  });

  test("unanswerable items differ from an answerable original by one premise", () => {
    for (let seed = 0; seed < 60; seed++) {
      const p = graphlaProblem({ depth: 1 + (seed % 6), seed, answerable: false });
      expect(feq(solveExact(p.original).values.get(p.target)!, frac(p.value))).toBe(true);
      expect(solveExact(p.premises).values.has(p.target)).toBe(false);
      const changed = p.original.filter((r) => !p.premises.includes(r));
      expect(changed.length).toBe(1);
      expect(p.premises.length - p.original.length).toBeGreaterThanOrEqual(-1);
    }
  });

  test("exact elimination finds values forward chaining cannot", () => {
    // A + B = 10 and A + 2B = 14 (written as relations): only elimination gives A = 6, B = 4.
    const rels = [
      { kind: "sum", x: "Ten", y: "A", z: "B" },
      { kind: "given", x: "Ten", value: 10 },
      { kind: "affine", x: "C", y: "B", a: 2, b: 0 },
      { kind: "sum", x: "Fourteen", y: "A", z: "C" },
      { kind: "given", x: "Fourteen", value: 14 },
    ] as const;
    expect(solveForward([...rels]).values.has("A")).toBe(false);
    expect(fstr(solveExact([...rels]).values.get("A")!)).toBe("6");
    expect(fstr(solveExact([...rels]).values.get("B")!)).toBe("4");
  });

  test("every trace line is a correct step and the last one is the answer", () => {
    let checked = 0;
    for (const inst of mixed("graphla", 120, 21)) {
      const { premises, question } = splitPrompt(inst.prompt);
      const fw = solveForward(premises.map(parseSentenceLA));
      const lines = inst.trace.split("\n");
      for (const line of lines) {
        const m = line.match(/^([A-Z][a-z]+) = .* = (-?\d+)\.$|^([A-Z][a-z]+) = (-?\d+) \(given\)\.$/);
        if (!m) continue;
        const [dish, value] = m[1] ? [m[1], m[2]!] : [m[3]!, m[4]!];
        checked++;
        expect(fstr(fw.values.get(dish)!)).toBe(value);
        // The arithmetic shown evaluates to the value claimed.
        const arith = line.split(" = ").slice(-2, -1)[0]!;
        if (!line.endsWith("(given).")) expect(String(Function(`return (${arith})`)())).toBe(value);
      }
      const last = lines[lines.length - 1]!;
      if (inst.answerable) expect(last.match(/= (-?\d+)\.$/)![1]).toBe(inst.answer);
      else expect(last).toBe(`So the price of ${laTarget(question)} cannot be determined.`);
    }
    expect(checked).toBeGreaterThan(300);
  });
});

describe("graphli solver", () => {
  test("the prompt text alone entails the answer, or provably does not", () => {
    for (const inst of mixed("graphli")) {
      const { premises, question } = splitPrompt(inst.prompt);
      const ps = premises.map(parseSentenceLI);
      const target = liTarget(question);
      expect(solveLI(ps).consistent).toBe(true);
      const e = entails(ps, target);
      expect(e === null ? ABSTAIN : String(e)).toBe(inst.answer);
    }
  });

  test("unanswerable items come from an answerable original by one intervention", () => {
    for (let seed = 0; seed < 60; seed++) {
      const p = graphliProblem({ depth: 1 + (seed % 6), seed, answerable: false });
      expect(entails(p.original, p.target)).toBe(p.value);
      expect(entails(p.premises, p.target)).toBe(null);
      expect(p.original.filter((r) => !p.premises.includes(r)).length).toBe(1);
    }
    const answers = Array.from({ length: 100 }, (_, s) => generate("graphli", { depth: 3, seed: s, answerable: true }).answer);
    expect(answers).toContain("true");
    expect(answers).toContain("false");
  });

  test("entails is complete where unit propagation is not", () => {
    const ps = [
      { kind: "rule", body: ["x"], head: "a" },
      { kind: "rule", body: ["x"], head: "b" },
      { kind: "rule", body: ["a", "b"], head: "c" },
      { kind: "fact", atom: "c", value: false },
    ] as const;
    expect(solveLI([...ps]).values.has("x")).toBe(false);
    expect(entails([...ps], "x")).toBe(false);
    expect(entails([...ps], "a")).toBe(null);
  });

  test("every trace line is a correct step and the last one is the answer", () => {
    let checked = 0;
    for (const inst of mixed("graphli", 120, 21)) {
      const { premises, question } = splitPrompt(inst.prompt);
      const ps = premises.map(parseSentenceLI);
      const lines = inst.trace.split("\n");
      for (const line of lines) {
        const m = line.match(/(?:^|so )([a-z]+) is (true|false)(?: \(given\))?\.$/);
        if (!m) continue;
        checked++;
        expect(String(entails(ps, m[1]!))).toBe(m[2]);
        // The rule quoted in a step is one of the premises.
        const rule = line.match(/^(If [a-z ]+ then [a-z]+);/);
        if (rule) expect(premises).toContain(`${rule[1]}.`);
      }
      const last = lines[lines.length - 1]!;
      if (inst.answerable) expect(last).toMatch(new RegExp(`${liTarget(question)} is ${inst.answer}(?: \\(given\\))?\\.$`));
      else expect(last).toBe(`So ${liTarget(question)} cannot be determined.`);
    }
    expect(checked).toBeGreaterThan(300);
  });
});
