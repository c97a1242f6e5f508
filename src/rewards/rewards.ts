// Reward functions. Built-ins are pure functions of the verifier's Judgement and run in-process
// (microseconds each; a worker round-trip would cost more than the work). User rewards are
// JavaScript modules run in a worker pool (pool.ts), so a bad one cannot stall the run.
//
// Built-ins (format failures count as wrong answers everywhere):
//   correct  the paper's outcome reward (arXiv 2511.09222) and the default: 1 if the answer is
//            right (abstaining is right exactly on unanswerable items), else 0.
//   honesty  ternary: answerable item:   +1 correct, 0 abstain, -1 wrong / empty / bad format.
//                     unanswerable item: +1 abstain, -1 any answer / empty / bad format.
//            Abstaining is a safe 0 when the model does not know; as soon as most of a group
//            is wrong, "unknown" gets a positive advantage, which pushes a weak policy towards
//            always abstaining. An option, not the default.
//   format   1 if the completion is <think>...</think><answer>...</answer> and is not an
//            abstention on an answerable item, else 0: a format bonus must never make
//            "unknown" the safe answer where an answer exists.
//
//   reward table (item kind x output)      correct  honesty  format
//   answerable,   right answer                1        +1       1
//   answerable,   wrong answer / empty         0        -1       1
//   answerable,   "unknown"                    0         0       0
//   unanswerable, "unknown"                    1        +1       1
//   unanswerable, any answer                   0        -1       1
//   any item,     bad format                   0        -1       0

import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Instance } from "../tasks/types.js";
import type { Judgement } from "../tasks/verify.js";

export type BuiltinRewardName = "correct" | "honesty" | "format";

export const BUILTIN_REWARDS: Readonly<Record<BuiltinRewardName, (j: Judgement, inst: Pick<Instance, "answerable">) => number>> = {
  correct: (j) => (j.correct ? 1 : 0),
  honesty: (j, inst) => (j.correct ? 1 : inst.answerable && j.abstained ? 0 : -1),
  format: (j, inst) => (j.format && !(inst.answerable && j.abstained) ? 1 : 0),
};

export function isBuiltinReward(name: string): name is BuiltinRewardName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_REWARDS, name);
}

/** One term of the total reward: a built-in name or the path of a .js/.mjs reward module. */
export interface RewardSpec {
  name: string;
  weight: number;
}

/** What a user reward module exports (as `reward` or as the default export). */
export type RewardFn = (completion: string, instance: Instance) => number | Promise<number>;

export const DEFAULT_REWARDS: readonly RewardSpec[] = [{ name: "correct", weight: 1 }];

/**
 * Parses "correct:1,format:0.1,./my-reward.mjs:0.5". The weight after the last ':' is optional
 * (default 1); a suffix that is not a number is taken as part of the name (Windows paths).
 */
export function parseRewardSpecs(text: string): RewardSpec[] {
  const specs = text.split(",").map((part) => part.trim()).filter(Boolean).map((part): RewardSpec => {
    const at = part.lastIndexOf(":");
    const w = at > 0 ? part.slice(at + 1).trim() : "";
    if (at > 0 && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(w)) return { name: part.slice(0, at).trim(), weight: Number(w) };
    return { name: part, weight: 1 };
  });
  checkRewardSpecs(specs);
  return specs;
}

export function isModuleSpec(name: string): boolean {
  return /\.(m?js|cjs)$/i.test(name);
}

export function checkRewardSpecs(specs: readonly RewardSpec[]): void {
  if (specs.length === 0) throw new RangeError("rewards: at least one reward is required");
  for (const s of specs) {
    if (!Number.isFinite(s.weight)) throw new RangeError(`rewards: weight of ${JSON.stringify(s.name)} must be a finite number, got ${s.weight}`);
    if (!isBuiltinReward(s.name) && !isModuleSpec(s.name))
      throw new RangeError(
        `rewards: unknown reward ${JSON.stringify(s.name)}; use one of ${Object.keys(BUILTIN_REWARDS).join(", ")} or a path to a .js/.mjs module`,
      );
  }
}

/** file:// URL of a reward module path (relative paths are taken from the working directory). */
export function moduleUrl(path: string): string {
  return pathToFileURL(isAbsolute(path) ? path : resolve(process.cwd(), path)).href;
}

/** Weighted sum of named components. */
export function weightedSum(specs: readonly RewardSpec[], components: Readonly<Record<string, number>>): number {
  return specs.reduce((sum, s) => sum + s.weight * (components[s.name] ?? 0), 0);
}
