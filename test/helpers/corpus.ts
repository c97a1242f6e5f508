// A small synthetic task-like corpus for tokenizer/init tests (the real one comes from src/tasks).
import { Rng } from "../../src/util/rng.js";

const DISHES = ["soup", "salad", "pasta", "curry", "bread", "tea", "pie", "rice"];

export function syntheticCorpus(n: number, seed = 1): string[] {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[rng.below(xs.length)]!;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = pick(DISHES);
    const b = pick(DISHES);
    const x = rng.below(50);
    const k = 2 + rng.below(4);
    const answerable = rng.uniform() < 0.5;
    const prompt = `The ${a} costs ${x} dollars. The ${b} costs ${k} more than twice the ${a}. How much does the ${b} cost?`;
    const think = `The ${a} costs ${x}. Twice that is ${2 * x}. Adding ${k} gives ${2 * x + k}.`;
    const answer = answerable ? String(2 * x + k) : "unknown";
    out.push(`${prompt}\n<think>${think}</think><answer>${answer}</answer>`);
  }
  return out;
}
