// Preference optimization steps on a list of pairs (library level: no files). A step takes
// `batch` pairs, scores the chosen and rejected completions of each micro-batch in one packed
// forward pass through the fused linear log-prob kernel, turns the preference loss's gradient
// w.r.t. each sequence's summed log-prob into per-token dLogprob for the fused backward, then
// makes one AdamW update. The loss is the mean over the step's pairs. `anvil dpo` (dpo.ts) wraps
// this in a run directory; an online loop calls trainPreferences once per round of new pairs.
//
// Order: pairs are drawn in epochs, each a permutation seeded by (seed, epoch), so step s uses
// the same pairs whether or not the run was resumed before it.
import type { Model } from "../model/model.js";
import type { AdamW } from "../model/optim.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import { packPairs, type TokenPair } from "./preference-data.js";
import { pairLoss, PreferenceTotals, usesReference, type PreferenceLossConfig, type PreferenceMetrics } from "./preference-loss.js";
import type { ReferenceLogps } from "./preference-ref.js";
import { sequenceLossGradient } from "./step.js";
import { NonFiniteLossError } from "./trainer.js";

/** What one step reports (TRL's names for the preference metrics). */
export type PreferenceStepMetrics = { step: number } & PreferenceMetrics & { lr: number; grad_norm: number; time_s: number };

export interface PreferenceTrainOptions extends PreferenceLossConfig {
  /** Optimizer steps to run: from startStep (default 0) up to steps. */
  steps: number;
  startStep?: number;
  /** Pairs per optimizer step. */
  batch: number;
  /** Sequences per forward/backward pass (a pair is two; at least one pair per pass). */
  microBatch: number;
  /** Seeds the order in which pairs are drawn. */
  seed: number;
  padId: number;
  /** Called after every step; returning true stops the run. */
  onStep?: (m: PreferenceStepMetrics) => void | boolean | Promise<void | boolean>;
}

/**
 * The pair indices each step trains on: consecutive slots of per-epoch permutations of the n
 * pairs, seeded by (seed, epoch). The current epoch's permutation is kept between calls.
 */
export function pairSchedule(n: number, batch: number, seed: number): (step: number) => number[] {
  let epoch = -1;
  let perm: number[] = [];
  return (step) =>
    Array.from({ length: batch }, (_, j) => {
      const slot = step * batch + j;
      const e = Math.floor(slot / n);
      if (e !== epoch) {
        epoch = e;
        const keys = Array.from({ length: n }, (_, i) => mixSeed(seed, e, i, PURPOSE.shuffle));
        perm = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a] - keys[b] || a - b);
      }
      return perm[slot % n]!;
    });
}

/**
 * One optimizer step on pairs[indices]: gradients of the mean loss accumulate over micro-batches,
 * then AdamW updates. `ref` is required unless the loss is reference-free (simpo, mappo-simpo).
 */
export async function preferenceStep(
  model: Model,
  optimizer: AdamW,
  pairs: readonly TokenPair[],
  ref: ReferenceLogps | null,
  indices: readonly number[],
  o: Omit<PreferenceTrainOptions, "steps" | "batch" | "seed" | "onStep">,
  step: number,
): Promise<PreferenceStepMetrics> {
  if (usesReference(o.loss) && !ref) throw new Error(`the ${o.loss} loss needs reference log-probs (computeReferenceLogps)`);
  const t0 = performance.now();
  const totals = new PreferenceTotals();
  const perPass = Math.max(1, Math.floor(o.microBatch / 2));
  const n = indices.length;
  model.zeroGrads();
  for (let s = 0; s < n; s += perPass) {
    const idx = indices.slice(s, s + perPass);
    const k = idx.length;
    const chunk = idx.map((i) => pairs[i]!);
    const term = (i: number, chosen: number, rejected: number) => {
      const [p, pi] = [chunk[i]!, idx[i]!];
      const l = pairLoss({ chosen, rejected, refChosen: ref?.chosen[pi] ?? 0, refRejected: ref?.rejected[pi] ?? 0, chosenTokens: p.chosen.completionIds.length, rejectedTokens: p.rejected.completionIds.length, rewardGap: p.rewardGap }, o);
      totals.add(l);
      return l;
    };
    // rows i and k + i (pair i's chosen and rejected) form group i: its loss term couples them
    const seen = new Set<number>();
    const groupOf = Int32Array.from({ length: 2 * k }, (_, b) => b % k);
    await sequenceLossGradient(model, packPairs(chunk, o.padId), groupOf, (rows, sums) => {
      const at = new Map<number, number>();
      rows.forEach((r, j) => at.set(r, j));
      const d = new Float64Array(rows.length);
      for (const i of new Set(Array.from(rows, (r) => r % k))) {
        const [c, r] = [at.get(i), at.get(k + i)]; // absent: an empty completion, sum 0
        const l = term(i, c === undefined ? 0 : sums[c]!, r === undefined ? 0 : sums[r]!);
        if (c !== undefined) d[c] = l.dChosen / n;
        if (r !== undefined) d[r] = l.dRejected / n;
        seen.add(i);
      }
      return d;
    });
    for (let i = 0; i < k; i++) if (!seen.has(i)) term(i, 0, 0); // both completions empty: no rows, no gradient
  }
  const m = totals.means();
  if (!Number.isFinite(m.loss)) throw new NonFiniteLossError(step + 1, `the ${o.loss} loss`);
  const r = await optimizer.update();
  if (r.skipped) throw new NonFiniteLossError(step + 1, `the ${o.loss} gradient norm`);
  return { step: step + 1, ...m, lr: r.lr, grad_norm: r.gradNorm, time_s: (performance.now() - t0) / 1000 };
}

/**
 * Trains on the pairs from startStep to steps (the library entry point: an online loop calls it
 * once per round). Gradients live only during the call. Returns every step's metrics.
 */
export async function trainPreferences(model: Model, optimizer: AdamW, pairs: readonly TokenPair[], ref: ReferenceLogps | null, o: PreferenceTrainOptions): Promise<PreferenceStepMetrics[]> {
  if (pairs.length === 0) throw new RangeError("trainPreferences: no pairs");
  const out: PreferenceStepMetrics[] = [];
  const schedule = pairSchedule(pairs.length, o.batch, o.seed);
  try {
    for (let step = o.startStep ?? 0; step < o.steps; step++) {
      const m = await preferenceStep(model, optimizer, pairs, ref, schedule(step), o, step);
      out.push(m);
      if ((await o.onStep?.(m)) === true) break;
    }
  } finally {
    model.freeGrads();
  }
  return out;
}
