// The preference methods of `anvil experiment anchor-vs-grpo` (issue 14): from the same weak
// SFT start as the RL methods, with the same budget.
//
//   dpo, ipo, simpo, mappo   offline: pairs sampled once from the weak start (anvil pairs'
//                            makePairs: promptsPerStep x steps prompts at the training depth,
//                            groupSize samples each, the verifier's outcome reward ranks them,
//                            one pair per prompt, no ground truth), shared by the four losses;
//                            then `steps` optimizer steps of promptsPerStep pairs each, the
//                            GRPO runs' update count. MaPPO's prior scores are the honesty
//                            scores (correct 1, abstained 0.5, wrong 0).
//   dpo-online               iterative DPO (`anvil dpo --online`): the same prompt budget split
//                            into rounds, each sampled from the current policy.
//   dpo-anchor               dpo-online with Anchor's idea: every prompt's ground-truth trajectory
//                            joins its samples as a candidate chosen completion (--ground-truth
//                            always), so a prompt the policy always fails still gives a pair.
//
// Layout, next to the RL runs:
//   <task>/pairs-seed<S>/pairs.jsonl, stats.json   the offline pairs of seed S (stats.json last)
//   <task>/<method>-seed<S>/                        an `anvil dpo` run directory
// A method whose pairs are empty (every prompt's samples scored alike) trains nothing: its
// "after" is the weak start.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Backend } from "../backend/backend.js";
import { runDpo, type DpoRunOptions } from "../rl/dpo.js";
import { makePairs, type PairsStats } from "../rl/pairs.js";
import { Policy } from "../rl/policy.js";
import type { PreferenceLoss } from "../rl/preference-loss.js";
import { latestCheckpoint } from "../rl/run.js";
import { createScorer } from "../rl/scoring.js";
import type { TaskName } from "../tasks/types.js";
import { writeFileAtomic } from "../util/atomic.js";
import { readJsonFileSync } from "../util/json-file.js";

export const PREFERENCE_METHODS = ["dpo", "ipo", "simpo", "mappo", "dpo-online", "dpo-anchor"] as const;
export type PreferenceMethod = (typeof PREFERENCE_METHODS)[number];

const LOSS_OF: Record<PreferenceMethod, PreferenceLoss> = { dpo: "sigmoid", ipo: "ipo", simpo: "simpo", mappo: "mappo", "dpo-online": "sigmoid", "dpo-anchor": "sigmoid" };

/** What a preference method needs of the experiment. */
export interface PreferenceRunSpec {
  task: TaskName;
  seed: number;
  /** The weak start (model directory). */
  weak: string;
  /** The task's directory in the experiment (<out>/<task>). */
  taskDir: string;
  depth: number;
  steps: number;
  promptsPerStep: number;
  groupSize: number;
  /** Rounds of dpo-online at most (the largest divisor of steps not above it is used). */
  onlineRounds: number;
  evalN: number;
  maxNewTokens: number;
  lr: number;
  backend: Exclude<DpoRunOptions["backend"], undefined>;
  threads: number;
  log: (line: string) => void;
}

/** Rounds of an online run of `steps` steps: the largest divisor of steps that is at most `max`. */
export function onlineRoundsFor(steps: number, max: number): number {
  for (let r = Math.min(max, steps); r > 1; r--) if (steps % r === 0) return r;
  return 1;
}

/**
 * Trains one preference method (resuming a killed run). Returns the model directory to evaluate
 * (null: no pairs, nothing trained) and, offline, the statistics of the pairs.
 */
export async function trainPreferenceMethod(method: PreferenceMethod, s: PreferenceRunSpec, backend: Backend): Promise<{ modelDir: string | null; pairs: PairsStats | null }> {
  const runDir = join(s.taskDir, `${method}-seed${s.seed}`);
  const common: DpoRunOptions = {
    model: s.weak,
    loss: LOSS_OF[method],
    minDepth: s.depth,
    maxDepth: s.depth,
    evalN: s.evalN,
    evalDepth: s.depth,
    maxNewTokens: s.maxNewTokens,
    batch: s.promptsPerStep,
    lr: s.lr,
    seed: s.seed,
    out: runDir,
    backend: s.backend,
    threads: s.threads,
    progress: false,
  };
  const resume = existsSync(join(runDir, "config.json")) && latestCheckpoint(runDir) !== null;
  let pairs: PairsStats | null = null;
  let opts: DpoRunOptions;
  if (method === "dpo-online" || method === "dpo-anchor") {
    const rounds = onlineRoundsFor(s.steps, s.onlineRounds);
    const stepsPerRound = s.steps / rounds;
    // Held-out eval after every round (the run's curve); offline runs have none of their own,
    // the experiment evaluates their result.
    opts = { ...common, online: true, task: s.task, rounds, stepsPerRound, promptsPerRound: s.promptsPerStep * stepsPerRound, samples: s.groupSize, pairsPerPrompt: 1, groundTruth: method === "dpo-anchor" ? "always" : "never" };
  } else {
    const made = await weakPairs(s, backend);
    pairs = made.stats;
    if (made.stats.pairs === 0) {
      s.log(`   no pairs from the weak start (every prompt's samples scored alike): ${method} trains nothing`);
      return { modelDir: null, pairs };
    }
    opts = { ...common, dataset: made.file, steps: s.steps, checkpointEvery: Math.max(1, Math.min(10, s.steps)) };
  }
  await runDpo(resume ? { resume: runDir } : opts, { log: s.log });
  return { modelDir: latestCheckpoint(runDir)!.dir, pairs };
}

/** The offline pairs of (task, seed), sampled from the weak start once and shared by the losses. */
async function weakPairs(s: PreferenceRunSpec, backend: Backend): Promise<{ file: string; stats: PairsStats }> {
  const dir = join(s.taskDir, `pairs-seed${s.seed}`);
  const file = join(dir, "pairs.jsonl");
  const statsFile = join(dir, "stats.json");
  if (existsSync(statsFile)) return { file, stats: readJsonFileSync<PairsStats>(statsFile) };
  mkdirSync(dir, { recursive: true });
  const n = s.promptsPerStep * s.steps;
  s.log(`   pairs from the weak start: ${n} prompts x ${s.groupSize} samples`);
  const policy = await Policy.load(s.weak, backend);
  const scorer = await createScorer("correct", { timeoutMs: 2000, heapMb: 256 });
  try {
    const { rows, stats } = await makePairs(policy, scorer, {
      task: s.task,
      n,
      minDepth: s.depth,
      maxDepth: s.depth,
      seed: s.seed,
      samples: s.groupSize,
      temperature: 1,
      topP: 1,
      maxNewTokens: s.maxNewTokens,
      pairsPerPrompt: 1,
      groundTruth: "never",
      scores: "honesty", // MaPPO's prior: an abstention is half as wrong as a wrong answer
    });
    await writeFileAtomic(file, rows.map((r) => JSON.stringify(r) + "\n").join(""));
    await writeFileAtomic(statsFile, JSON.stringify(stats, null, 2) + "\n");
    s.log(`   ${stats.pairs} pairs (${stats.prompts_without_pair} prompts without one); samples correct: answerable ${(100 * stats.acc_answerable).toFixed(1)}%, unanswerable ${(100 * stats.acc_unanswerable).toFixed(1)}%`);
    return { file, stats };
  } finally {
    await scorer.close();
    policy.model.dispose();
  }
}
