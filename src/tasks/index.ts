// Task registry: one entry point per task, deterministic datasets, and a corpus for tokenizers.

import { type GenerateOptions, type Instance, type TaskName, TASK_NAMES, completionFor } from "./types.js";
import { TaskRng, mixSeed } from "./rng.js";
import { generateGraphLA } from "./graphla.js";
import { generateGraphLI } from "./graphli.js";

export * from "./types.js";
export { FORMAT_INSTRUCTION, formatPrompt, splitPrompt } from "./prompt.js";
export { graphlaProblem, GRAPHLA_MAX_DEPTH, GRAPHLA_MAX_DISTRACTORS } from "./graphla.js";
export { graphliProblem, GRAPHLI_MAX_DEPTH, GRAPHLI_MAX_DISTRACTORS } from "./graphli.js";

const GENERATORS: Record<TaskName, (opts: GenerateOptions) => Instance> = {
  graphla: generateGraphLA,
  graphli: generateGraphLI,
};

export function isTaskName(s: string): s is TaskName {
  return (TASK_NAMES as readonly string[]).includes(s);
}

/** One instance, a pure function of (task, opts). */
export function generate(task: TaskName, opts: GenerateOptions): Instance {
  const gen = GENERATORS[task];
  if (!gen) throw new RangeError(`unknown task ${JSON.stringify(task)}; expected one of ${TASK_NAMES.join(", ")}`);
  return gen(opts);
}

/** A number, or an inclusive [min, max] range sampled per instance. */
export type IntRange = number | readonly [number, number];

export interface DatasetOptions {
  /** Number of instances (>= 0). */
  n: number;
  /** Derivation length per instance: fixed, or uniform in [min, max]. */
  depth: IntRange;
  seed: number;
  /** Irrelevant premises per instance (default: equal to that instance's depth). */
  distractors?: IntRange;
}

function sampleRange(rng: TaskRng, r: IntRange, name: string): number {
  const [lo, hi] = typeof r === "number" ? [r, r] : r;
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo > hi)
    throw new RangeError(`${name} must be an integer or an integer range [min, max] with min <= max, got ${JSON.stringify(r)}`);
  return rng.int(lo, hi);
}

/**
 * n instances, deterministic from `seed`. Exactly half are answerable when n is even (the odd
 * one out is decided by the seed), in a seed-shuffled order. Instance i has seed mixSeed(seed, i).
 */
export function generateDataset(task: TaskName, opts: DatasetOptions): Instance[] {
  const { n, seed } = opts;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
  const rng = new TaskRng(mixSeed(seed, 0xda7a));
  const half = Math.floor(n / 2);
  const flags = Array.from({ length: n }, (_, i) => (i < 2 * half ? i < half : rng.chance(0.5)));
  rng.shuffle(flags);
  return flags.map((answerable, i) => {
    const depth = sampleRange(rng, opts.depth, "depth");
    const distractors = opts.distractors === undefined ? undefined : sampleRange(rng, opts.distractors, "distractors");
    return generate(task, { depth, distractors, seed: mixSeed(seed, i), answerable });
  });
}

/** Phrases a tokenizer fitted to the task keeps whole. GraphLI's facts read "foam is true": as one
 * token " is true", a fact's value is the token right after its atom, which the induction init's
 * one-token head reads at once (trace value reads 0.001-0.03 nats after 400 SFT steps, against
 * 0.43-0.51 after 1,200 without: results/sft-probes). */
export function taskPhrases(task: TaskName): string[] {
  const labels = Array.from({ length: LABELLED_PREMISES }, (_, k) => `[${k + 1}]`);
  return task === "graphli" ? [" is true", " is false", ...labels.map((l) => `${l} If`)] : labels;
}

/** Numbered premises (GraphLI's rules "[4] If ...", GraphLA's relations "[4] Tart ...") are kept
 * whole up to this label, so the token after a label is the premise's first word: one look-up. A
 * later label is split into more tokens but still reads right. (GraphLI rules per item, the most
 * in 3,000 items: 66 at depth 10 with 12 distractors, 38 at depth 6, 29 at depth 4.) */
const LABELLED_PREMISES = 72;

/** What a tokenizer for the task is fitted to: its corpus and the phrases it keeps whole. */
export function taskTokenizerInput(task: TaskName): { corpus: string[]; phrases: string[] } {
  return { corpus: taskCorpus(task), phrases: taskPhrases(task) };
}

/** Prompts and ground-truth completions, for fitting a tokenizer to the task vocabulary. */
export function taskCorpus(task: TaskName, n = 500): string[] {
  return generateDataset(task, { n, depth: [1, 6], seed: 0x5eed }).flatMap((inst) => [inst.prompt, completionFor(inst)]);
}
