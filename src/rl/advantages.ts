// Advantage estimators over groups of rewards. rewards is (numGroups * G) row-major by group.
import type { AdvantageKind } from "./options.js";

/**
 * grpo:        (r - mean) / (std + 1e-4), sample std (Shao et al. 2024)
 * dr-grpo:     r - mean (Liu et al. 2025: the std term biases towards easy/hard groups)
 * rloo:        r - mean of the other G-1 rewards (Ahmadian et al. 2024)
 * reinforce++: r - group mean, then normalised by the batch std (Hu 2025)
 */
export function computeAdvantages(rewards: number[], G: number, kind: AdvantageKind): number[] {
  if (rewards.length % G !== 0) throw new RangeError(`rewards (${rewards.length}) must be a multiple of the group size ${G}`);
  const out = new Array<number>(rewards.length);
  for (let g = 0; g < rewards.length; g += G) {
    const grp = rewards.slice(g, g + G);
    const sum = grp.reduce((a, b) => a + b, 0);
    const mean = sum / G;
    const std = Math.sqrt(grp.reduce((a, r) => a + (r - mean) ** 2, 0) / Math.max(1, G - 1));
    for (let i = 0; i < G; i++) {
      const r = grp[i];
      switch (kind) {
        case "grpo":
          out[g + i] = (r - mean) / (std + 1e-4);
          break;
        case "dr-grpo":
        case "reinforce++":
          out[g + i] = r - mean;
          break;
        case "rloo":
          out[g + i] = r - (sum - r) / (G - 1);
          break;
      }
    }
  }
  if (kind === "reinforce++") {
    const n = out.length;
    const mean = out.reduce((a, b) => a + b, 0) / n;
    return standardise(out, mean, sumSquaredDeviations(out, mean), n);
  }
  return out;
}

/**
 * reinforce++'s batch normalisation when the batch is split across data-parallel ranks:
 * `allReduceSum` sums over ranks, so every rank normalises by the whole batch's mean and std.
 * Pass group-centred advantages (computeAdvantages with "dr-grpo").
 */
export async function normaliseOverRanks(centred: number[], allReduceSum: (v: Float64Array) => Promise<Float64Array>): Promise<number[]> {
  const [total, n] = await allReduceSum(Float64Array.of(centred.reduce((a, b) => a + b, 0), centred.length));
  const mean = total / n;
  const [ss] = await allReduceSum(Float64Array.of(sumSquaredDeviations(centred, mean)));
  return standardise(centred, mean, ss, n);
}

const sumSquaredDeviations = (xs: number[], mean: number) => xs.reduce((a, x) => a + (x - mean) ** 2, 0);

/** (x - mean) / (sample std + 1e-8). */
function standardise(xs: number[], mean: number, ss: number, n: number): number[] {
  const std = Math.sqrt(ss / Math.max(1, n - 1));
  return xs.map((x) => (x - mean) / (std + 1e-8));
}

/** Population-free summary used by filters and metrics: is every reward of the group equal? */
export function groupHasZeroStd(rewards: number[]): boolean {
  return rewards.every((r) => r === rewards[0]);
}
