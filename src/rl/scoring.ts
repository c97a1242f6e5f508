// Rewards for the trainer: verifier verdicts plus the weighted reward, computed by the
// reward pool (user reward modules run in piscina workers with a per-call timeout).
import { RewardPool, type RewardFailure } from "../rewards/pool.js";
import { parseRewardSpecs } from "../rewards/rewards.js";
import type { Instance } from "../tasks/types.js";

export interface Scored {
  reward: number;
  correct: boolean;
  abstained: boolean;
  answered: boolean;
  format: boolean;
  /** Why a reward term failed on this sample (it then counts 0), if one did. */
  failure?: string;
}

export interface Scorer {
  score(instances: readonly Instance[], completions: readonly string[]): Promise<Scored[]>;
  close(): Promise<void>;
}

export interface ScorerOptions {
  /** Per-call timeout of a user reward, ms. */
  timeoutMs: number;
  /** Heap limit of each reward worker, MB. */
  heapMb: number;
  onFailure?: (f: RewardFailure) => void;
}

export async function createScorer(rewards: string, opts: ScorerOptions): Promise<Scorer> {
  const pool = await RewardPool.create({ rewards: parseRewardSpecs(rewards), timeoutMs: opts.timeoutMs, heapMb: opts.heapMb, onFailure: opts.onFailure });
  return {
    async score(instances, completions) {
      const res = await pool.scoreBatch(instances, completions);
      const why = new Map<number, string>();
      for (const f of res.failures) why.set(f.index, `${f.reward}: ${f.reason}`);
      return res.details.map((d, i) => ({
        reward: d.reward,
        correct: d.judgement.correct,
        abstained: d.judgement.abstained,
        answered: d.judgement.answered,
        format: d.judgement.format,
        failure: why.get(i),
      }));
    },
    close: () => pool.close(),
  };
}
