// Preference pairs from a task: sample several completions per prompt, score them with the
// task's verifier (through the same reward pool as training), and pair a higher-reward completion
// with a lower-reward one. Under the default outcome reward that is correct vs incorrect, and an
// honest "unknown" on an unanswerable item counts as correct. Rows are TRL's preference format
// ({prompt, chosen, rejected}) plus the rewards as MaPPO's prior scores.
import { completionFor, generateDataset } from "../tasks/index.js";
import type { Instance, TaskName } from "../tasks/types.js";
import { mixSeed, PURPOSE } from "../util/seed.js";
import type { RolloutSource } from "./policy.js";
import type { Scored, Scorer } from "./scoring.js";

export const GROUND_TRUTH_CHOICES = ["never", "all-fail", "always"] as const;
export type GroundTruthChosen = (typeof GROUND_TRUTH_CHOICES)[number];

export interface PairsOptions {
  task: TaskName;
  /** Prompts (half unanswerable). */
  n: number;
  minDepth: number;
  maxDepth: number;
  seed: number;
  /** Completions sampled per prompt. */
  samples: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** Pairs kept per prompt at most (distinct chosen/rejected combinations, best first). */
  pairsPerPrompt: number;
  /**
   * When the task's ground-truth trajectory is the chosen completion: never (pairs come from the
   * samples alone), all-fail (only for a prompt none of whose samples is correct: Anchor's idea for
   * DPO), always (it is chosen against every incorrect sample).
   */
  groundTruth: GroundTruthChosen;
  /**
   * What score_chosen / score_rejected hold (MaPPO's prior, in [0, 1]): "reward", the reward that
   * ranked the pair (default); "honesty", the ternary honesty reward mapped to [0, 1] (correct 1,
   * abstained 0.5, wrong 0), so a pair against an abstention has a smaller gap than one against a
   * wrong answer and MaPPO pushes the abstention down less. A rejected score above the chosen
   * one is lowered to it.
   */
  scores?: PairScores;
}

export const PAIR_SCORES = ["reward", "honesty"] as const;
export type PairScores = (typeof PAIR_SCORES)[number];

export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
  score_chosen: number;
  score_rejected: number;
  /** Provenance, ignored by the trainer. */
  id: string;
  answerable: boolean;
  chosen_is_ground_truth: boolean;
}

export interface PairsStats {
  prompts: number;
  samples: number;
  /** Fraction of sampled completions that are correct: all, on answerable / on unanswerable items. */
  acc: number;
  acc_answerable: number;
  acc_unanswerable: number;
  abstain_rate: number;
  pairs: number;
  /** Prompts that gave no pair (all samples equally rewarded and no ground truth used). */
  prompts_without_pair: number;
  ground_truth_pairs: number;
}

/** The prompts `anvil pairs` samples: a stream of its own, disjoint from held-out evaluation. */
export function pairPrompts(o: Pick<PairsOptions, "task" | "n" | "minDepth" | "maxDepth" | "seed">): Instance[] {
  return generateDataset(o.task, { n: o.n, depth: [o.minDepth, o.maxDepth], seed: mixSeed(o.seed, PURPOSE.pairs) });
}

/**
 * Up to `max` (chosen, rejected) index pairs from rewards: every strictly better/worse combination,
 * the largest reward gap first, each completion used as evenly as possible. Exported for tests.
 */
export function choosePairs(rewards: readonly number[], max: number): [number, number][] {
  const gapOf = (p: [number, number]) => rewards[p[0]]! - rewards[p[1]]!;
  const all: [number, number][] = [];
  rewards.forEach((rc, c) => rewards.forEach((rr, r) => void (rc > rr && all.push([c, r]))));
  all.sort((a, b) => gapOf(b) - gapOf(a) || a[0] - b[0] || a[1] - b[1]);
  const used = new Map<number, number>();
  const load = (p: [number, number]) => (used.get(p[0]) ?? 0) + (used.get(p[1]) ?? 0);
  const out: [number, number][] = [];
  // Largest gap first; among equal gaps the least-used completions, so no sample is in every pair.
  while (out.length < max && all.length) {
    let best = 0;
    for (let k = 1; k < all.length && gapOf(all[k]!) === gapOf(all[0]!); k++) if (load(all[k]!) < load(all[best]!)) best = k;
    const [c, r] = all.splice(best, 1)[0]!;
    used.set(c, (used.get(c) ?? 0) + 1).set(r, (used.get(r) ?? 0) + 1);
    out.push([c, r]);
  }
  return out;
}

/** Samples, scores and pairs; `progress(done, total)` after each chunk of prompts. */
export async function makePairs(
  source: RolloutSource,
  scorer: Scorer,
  o: PairsOptions,
  progress: (done: number, total: number) => void = () => {},
): Promise<{ rows: PreferenceRow[]; stats: PairsStats }> {
  const items = pairPrompts(o);
  const rows: PreferenceRow[] = [];
  const st = { correctAns: 0, nAns: 0, correctUn: 0, nUn: 0, abstained: 0, noPair: 0, gt: 0 };
  const CHUNK = 16; // prompts per generation call: bounds memory, gives progress
  for (let s = 0; s < items.length; s += CHUNK) {
    const chunk = items.slice(s, s + CHUNK);
    const prompts = chunk.flatMap((it) => Array<string>(o.samples).fill(it.prompt));
    const gens = await source.generate(prompts, {
      maxNewTokens: o.maxNewTokens,
      sampling: { temperature: o.temperature, topK: 0, topP: o.topP, minP: 0, greedy: o.temperature === 0 },
      seed: mixSeed(o.seed, PURPOSE.sample, s),
      rowKeys: prompts.map((_, k) => s * o.samples + k),
    });
    const texts = gens.map((g) => g.text);
    // Ground truths are scored only when they can join the candidates.
    const truths = o.groundTruth === "never" ? [] : chunk.map((it) => completionFor(it));
    // The ground truth is scored like a sample, so its score is the verifier's, not assumed.
    const scored = await scorer.score([...prompts.map((_, k) => chunk[Math.floor(k / o.samples)]!), ...chunk.slice(0, truths.length)], [...texts, ...truths]);
    chunk.forEach((it, j) => {
      const mine = scored.slice(j * o.samples, (j + 1) * o.samples);
      const ok = mine.filter((x) => x.correct).length;
      if (it.answerable) (st.correctAns += ok), (st.nAns += o.samples);
      else (st.correctUn += ok), (st.nUn += o.samples);
      st.abstained += mine.filter((x) => x.abstained).length;
      const score = (x: Scored) => (o.scores === "honesty" ? (x.correct ? 1 : x.abstained ? 0.5 : 0) : x.reward);
      const cand = mine.map((x, k) => ({ text: texts[j * o.samples + k]!, reward: x.reward, score: score(x), gt: false }));
      if (o.groundTruth === "always" || (o.groundTruth === "all-fail" && ok === 0)) {
        const gt = scored[prompts.length + j]!;
        cand.push({ text: truths[j]!, reward: gt.reward, score: score(gt), gt: true });
      }
      const chosen = choosePairs(
        cand.map((c) => c.reward),
        o.pairsPerPrompt,
      );
      if (chosen.length === 0) st.noPair++;
      for (const [c, r] of chosen) {
        if (cand[c]!.gt) st.gt++;
        rows.push({
          prompt: it.prompt,
          chosen: cand[c]!.text,
          rejected: cand[r]!.text,
          score_chosen: cand[c]!.score,
          score_rejected: Math.min(cand[r]!.score, cand[c]!.score),
          id: it.id,
          answerable: it.answerable,
          chosen_is_ground_truth: cand[c]!.gt,
        });
      }
    });
    progress(Math.min(s + CHUNK, items.length), items.length);
  }
  const frac = (a: number, b: number) => (b ? a / b : 0);
  return {
    rows,
    stats: {
      prompts: items.length,
      samples: items.length * o.samples,
      acc: frac(st.correctAns + st.correctUn, st.nAns + st.nUn),
      acc_answerable: frac(st.correctAns, st.nAns),
      acc_unanswerable: frac(st.correctUn, st.nUn),
      abstain_rate: frac(st.abstained, items.length * o.samples),
      pairs: rows.length,
      prompts_without_pair: st.noPair,
      ground_truth_pairs: st.gt,
    },
  };
}
