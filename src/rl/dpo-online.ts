// Online (iterative) DPO: `anvil dpo --online`. Each round
//   sample   --samples completions for each of --prompts-per-round new task prompts, from the
//            current policy (makePairs, pairs.ts: the prompts and the sampling are seeded by
//            (seed, round), so every round sees other prompts)
//   label    the verifier ranks them through the reward pool; better vs worse become pairs
//   reference each pair scored once by the reference: the starting model (default; under LoRA
//            the base, adapter disabled) or, with --refresh-reference, the policy as it is now
//   train    --steps-per-round optimizer steps on the round's pairs (preferenceStep)
// then the round's last step row gets the round's numbers (pair statistics, held-out eval), the
// round's pairs go to rounds/round-R.jsonl, and a checkpoint is written: runs resume at round
// boundaries. A round whose prompts give no pair makes no update, its steps are counted anyway
// (step numbers stay round x stepsPerRound, and the LR schedule is the same for every run).
//
// Determinism: a resumed run loads the round-boundary checkpoint (parameters and optimizer
// moments exactly), and sampling, labelling and the pair order are functions of (seed, round),
// so it reproduces the uninterrupted run's metrics.
import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Backend } from "../backend/backend.js";
import { loadCheckpoint } from "../model/checkpoint.js";
import type { Model } from "../model/model.js";
import type { AdamW } from "../model/optim.js";
import type { TaskName } from "../tasks/types.js";
import { writeFileAtomicSync } from "../util/atomic.js";
import { mixSeed } from "../util/seed.js";
import { makePairs, type PairsStats } from "./pairs.js";
import type { Policy } from "./policy.js";
import { checkPreferencePairs, encodePairs } from "./preference-data.js";
import { usesReference } from "./preference-loss.js";
import type { PreferenceOptions } from "./preference-options.js";
import { computeReferenceLogps, type ReferenceLogps } from "./preference-ref.js";
import { pairSchedule, preferenceStep, type PreferenceStepMetrics } from "./preference-train.js";
import type { Scorer } from "./scoring.js";

/** What the last step of a round adds to its metrics row (pair statistics of the round's samples). */
export type RoundMetrics = { round: number; sample_s: number } & Omit<PairsStats, "prompts" | "samples">;

export interface OnlineRun {
  o: PreferenceOptions;
  runDir: string;
  backend: Backend;
  model: Model;
  optimizer: AdamW;
  policy: Policy;
  scorer: Scorer;
  padId: number;
  /** The reference is the base with the adapter disabled (LoRA). */
  useLora: boolean;
  /** Steps already done (a multiple of stepsPerRound: checkpoints are at round ends). */
  startStep: number;
  log: (line: string) => void;
  /** The held-out eval as eval_* fields ({} without a task). */
  evalRow: () => Promise<Record<string, number>>;
  /** Writes a metrics row (and tells the hooks, the progress bar, the log). */
  record: (row: Record<string, number>, m: PreferenceStepMetrics | null) => void;
  checkpoint: (step: number, round: number) => Promise<string>;
  report: () => void;
}

export function roundOf(step: number, stepsPerRound: number): number {
  if (step % stepsPerRound !== 0) throw new Error(`online run: checkpoint at step ${step} is not at a round boundary (steps per round ${stepsPerRound}); resume needs a round-end checkpoint`);
  return step / stepsPerRound;
}

/** Runs rounds startStep / stepsPerRound .. rounds - 1. Returns the last step's metrics. */
export async function runOnlineRounds(r: OnlineRun): Promise<PreferenceStepMetrics | null> {
  const { o, model, optimizer, log } = r;
  const encode = (rows: { prompt: string; chosen: string; rejected: string; score_chosen: number; score_rejected: number }[]) =>
    encodePairs(r.policy.tokenizer, model.config.maxPositionEmbeddings, checkPreferencePairs(rows, "round pairs"));
  let last: PreferenceStepMetrics | null = null;
  mkdirSync(join(r.runDir, "rounds"), { recursive: true });
  for (let round = roundOf(r.startStep, o.stepsPerRound); round < o.rounds; round++) {
    // ---- sample and label, from the policy as it is now
    const t0 = performance.now();
    const { rows, stats } = await makePairs(r.policy, r.scorer, {
      task: o.task as TaskName,
      n: o.promptsPerRound,
      minDepth: o.minDepth,
      maxDepth: o.maxDepth,
      seed: mixSeed(o.seed, round),
      samples: o.samples,
      temperature: o.temperature,
      topP: o.topP,
      maxNewTokens: o.maxNewTokens,
      pairsPerPrompt: o.pairsPerPrompt,
      groundTruth: o.groundTruth,
    });
    writeFileAtomicSync(join(r.runDir, "rounds", `round-${round + 1}.jsonl`), rows.map((x) => JSON.stringify(x) + "\n").join(""));
    const { prompts: _p, samples: _s, ...pairStats } = stats;
    const roundRow: RoundMetrics = { round: round + 1, sample_s: (performance.now() - t0) / 1000, ...pairStats };
    log(
      `round ${round + 1}/${o.rounds}: ${stats.pairs} pairs from ${stats.prompts} prompts (${stats.prompts_without_pair} without a pair); ` +
        `samples correct: answerable ${pct(stats.acc_answerable)}, unanswerable ${pct(stats.acc_unanswerable)}, abstain ${pct(stats.abstain_rate)}`,
    );
    const first = round * o.stepsPerRound;
    const end = first + o.stepsPerRound;

    // ---- train on them
    if (rows.length === 0) {
      log(`round ${round + 1}: no pairs (every prompt's samples scored alike): no update this round`);
      r.record({ step: end, ...roundRow, ...(await r.evalRow()) }, null);
    } else {
      const pairs = encode(rows);
      const ref = usesReference(o.loss) ? await referenceOf(r, pairs) : null;
      const schedule = pairSchedule(pairs.length, o.batch, mixSeed(o.seed, round));
      try {
        for (let step = first; step < end; step++) {
          const m = await preferenceStep(model, optimizer, pairs, ref, schedule(step - first), { ...o, padId: r.padId }, step);
          last = m;
          const row: Record<string, number> = { ...m };
          if (step + 1 === end) {
            model.freeGrads(); // before generating for the eval: gradients are not needed there
            Object.assign(row, roundRow, await r.evalRow());
          }
          r.record(row, m);
        }
      } finally {
        model.freeGrads();
      }
    }
    await r.checkpoint(end, round + 1);
    r.report();
  }
  return last;
}

/** The round's reference log-probs: the starting model's (or the base's), or the current policy's. */
async function referenceOf(r: OnlineRun, pairs: Parameters<typeof computeReferenceLogps>[1]): Promise<ReferenceLogps> {
  const { o, model, padId } = r;
  if (o.refreshReference) return computeReferenceLogps(model, pairs, padId, o.microBatch, false);
  if (r.useLora) return computeReferenceLogps(model, pairs, padId, o.microBatch, true);
  // Full fine-tuning: the starting weights, loaded for the scoring only (no second model kept).
  const start = (await loadCheckpoint(o.model, r.backend)).model;
  try {
    return await computeReferenceLogps(start, pairs, padId, o.microBatch, false);
  } finally {
    start.dispose();
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Appends one metrics row. */
export const appendMetrics = (runDir: string, row: Record<string, number>): void => appendFileSync(join(runDir, "metrics.jsonl"), JSON.stringify(row) + "\n");
