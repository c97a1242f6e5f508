// Number facts before the task. The paper's models know arithmetic before RL; a tiny model made
// here does not, and on GraphLA that, not the deduction, is what its weak starts got wrong (153 of
// 159 wrong answerable items with a miscomputed step; README, "Where GraphLA's answerable items go
// wrong"). So a GraphLA model made here first learns the steps GraphLA's traces compute, alone:
// each drill item asks for one trace step ("Compute 3*16 - 1.") and answers with the trace's own
// chain ("3*16 - 1 = 48 - 1 = 47"). Short items in large batches: the tiny preset gets 96.9% of
// held-out steps right after 1,500 steps of 64 (results/number-facts/), minutes on 2 cores, where
// the task's SFT had not learned them in 1,750 steps of 16 traces.
import { existsSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { createBackend } from "../backend/index.js";
import { saveCheckpoint } from "../model/checkpoint.js";
import { initModel, PRESET_SFT_LR, type InitModelOptions, type Preset } from "../model/init.js";
import { generate, taskTokenizerInput } from "../tasks/index.js";
import type { Instance, TaskName } from "../tasks/types.js";
import { Progress } from "../util/progress.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import { Policy } from "./policy.js";
import { runSft } from "./sft.js";

/** Drill steps a model made here for the task learns before anything else (0: none). */
export const NUMBER_FACT_STEPS: Record<TaskName, number> = { graphla: 1500, graphli: 0 };
/** Drill items per step. */
export const NUMBER_FACT_BATCH = 64;

/** One computed step of a trace: "so X = <chain> = <value>." with the chain split at " = ". */
export interface NumberFact {
  chain: string[];
  value: string;
}

/** The computed steps of a GraphLA trace, in order. */
export function factsOf(trace: string): NumberFact[] {
  return [...trace.matchAll(/, so [A-Z][a-z]+ = ([-+*/()= \d]+?) = (-?\d+(?:\/\d+)?)\./g)].map((m) => ({ chain: m[1]!.split(" = "), value: m[2]! }));
}

/** The drill item of a fact: its first expression asked, its chain as the trace writes it. */
export function factItem(f: NumberFact, id: string): Instance {
  return { id, task: "number-facts", prompt: `Compute ${f.chain[0]}.`, answer: f.value, trace: `${f.chain.join(" = ")} = ${f.value}`, depth: 1, distractors: 0, answerable: true, seed: 0 };
}

/** The i-th drill item of a stream: the steps of the traces of generated items, depths 1-4. */
export function factStream(task: TaskName, seed: number): (i: number) => Instance {
  const pool: NumberFact[] = [];
  let item = 0;
  return (i) => {
    while (pool.length <= i) {
      if (item === 200 && pool.length === 0) throw new Error(`${task}'s traces compute no numbers: it has no number facts to learn`);
      const s = mixSeed(seed, item++, PURPOSE.sft, 0xfac7);
      pool.push(...factsOf(generate(task, { depth: 1 + (s % 4), seed: s, answerable: s % 2 === 0 }).trace));
    }
    return factItem(pool[i]!, `number-facts-${seed}-${i}`);
  };
}

/** Greedy accuracy on `items` (right when the answer tag holds the value). */
export async function factAccuracy(policy: Policy, items: Instance[]): Promise<number> {
  const gens = await policy.generate(
    items.map((f) => f.prompt),
    { maxNewTokens: 48, sampling: { temperature: 0, topK: 0, topP: 1, minP: 0, greedy: true }, seed: 0 },
  );
  return gens.filter((g, k) => g.text.includes(`<answer>${items[k]!.answer}</answer>`)).length / Math.max(1, items.length);
}

/** SFT on the drill stream; returns held-out accuracy on 256 facts (other seeds than training's). */
export async function learnNumberFacts(policy: Policy, task: TaskName, steps: number, seed: number): Promise<number> {
  const train = factStream(task, seed);
  const bar = new Progress(`number facts ${task}`, steps);
  await runSft(policy, {
    steps,
    lr: PRESET_SFT_LR,
    batch: NUMBER_FACT_BATCH,
    instances: (s, j) => train(s * NUMBER_FACT_BATCH + j),
    onStep: (s, loss) => void bar.update(s + 1, { loss }),
  });
  bar.done();
  const test = factStream(task, seed ^ 0x7e57);
  return factAccuracy(policy, Array.from({ length: 256 }, (_, i) => test(i)));
}

/**
 * Makes a model for `task` in `out`: a fresh preset model (tokenizer fitted to the task, induction
 * init), then its number facts. Written whole or not at all: a killed run leaves no `out`.
 */
export async function makeTaskModel(o: {
  task: TaskName;
  preset: Preset;
  out: string;
  seed: number;
  threads: number;
  log: (line: string) => void;
  /** Drill steps (default: the task's NUMBER_FACT_STEPS). */
  numberFacts?: number;
  init?: Pick<InitModelOptions, "vocabSize" | "attentionInit" | "overwrite">;
}): Promise<{ numParams: number; vocabSize: number }> {
  const steps = o.numberFacts ?? NUMBER_FACT_STEPS[o.task];
  if (!o.init?.overwrite && existsSync(join(o.out, "config.json"))) throw new Error(`${o.out} already holds a model; pass overwrite to replace it`);
  const fresh = `${o.out}.init-${process.pid}`;
  await rm(fresh, { recursive: true, force: true });
  try {
    const r = await initModel({ preset: o.preset, ...taskTokenizerInput(o.task), ...o.init, out: fresh, seed: o.seed });
    if (steps === 0) {
      await rm(o.out, { recursive: true, force: true });
      await rename(fresh, o.out);
    } else {
      const backend = await createBackend("cpu", { threads: o.threads });
      const policy = await Policy.load(fresh, backend);
      try {
        o.log(`${o.task}: learning the task's number facts first (${steps} steps of ${NUMBER_FACT_BATCH} trace steps)`);
        const acc = await learnNumberFacts(policy, o.task, steps, o.seed);
        o.log(`${o.task}: number facts right on ${(100 * acc).toFixed(1)}% of 256 held-out trace steps`);
        await saveCheckpoint(o.out, policy.model, { tokenizerDir: fresh });
      } finally {
        policy.model.dispose();
        backend.destroy();
      }
    }
    return { numParams: r.numParams, vocabSize: r.config.vocabSize };
  } finally {
    await rm(fresh, { recursive: true, force: true });
  }
}
