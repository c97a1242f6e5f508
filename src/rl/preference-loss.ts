// Preference losses on per-sequence log-probs: the loss of each (chosen, rejected) pair, its
// gradient with respect to the policy's *summed* completion log-probs (what the fused backward
// broadcasts to the tokens), and TRL's metrics. Pure numbers, no model: unit-tested against
// PyTorch autograd (test/fixtures/make_dpo.py).
//
// Per pair: c, r = policy log-prob of the chosen / rejected completion (sum over its tokens),
// c0, r0 = the same under the frozen reference, |c|, |r| = completion lengths in tokens,
// Δr = prior reward gap (MaPPO) in [0, 1], σ = logistic function.
//
//   sigmoid      DPO (Rafailov et al. 2023) with cDPO label smoothing ε (Mitchell 2023):
//                h = (c - c0) - (r - r0);  loss = -(1-ε) log σ(βh) - ε log σ(-βh)
//   ipo          IPO (Azar et al. 2023), on per-token averaged log-probs as TRL does:
//                h = (c/|c| - c0/|c|) - (r/|r| - r0/|r|);  loss = (h - 1/(2β))²
//   simpo        SimPO (Meng et al. 2024), reference-free, length-normalised, margin γ:
//                z = β(c/|c| - r/|r|) - γ;  loss = -(1-ε) log σ(z) - ε log σ(-z)
//   mappo        MaPPO (Lan et al. 2025, arXiv 2507.21183v5, eq. 8) on DPO: the rejected
//                log-ratio is weighted by the prior reward gap:
//                z = β[(c - c0) - Δr (r - r0)];  loss = -(1-ε) log σ(z) - ε log σ(-z)
//   mappo-simpo  MaPPO's plug-in on SimPO (eq. 12): z = β(c/|c| - Δr r/|r|) - γ
//   mappo-ipo    MaPPO's plug-in on IPO (eq. 14), on ipo's averaged log-probs:
//                loss = (a - Δr b - 1/(2β))², a and b ipo's chosen and rejected log-ratios
// With Δr = 1 (no scores) each MaPPO loss is exactly its base loss.
//
// Metrics (TRL's names): rewards/chosen = β·(c̃ - c̃0), rewards/rejected = β·(r̃ - r̃0), where
// c̃ is the log-prob the loss uses (averaged for ipo/simpo), and the reference term is 0 for
// the reference-free losses; margins = chosen - rejected; accuracies = fraction of pairs with
// rewards/chosen > rewards/rejected; logps/* = mean of c̃, r̃.

export const PREFERENCE_LOSSES = ["sigmoid", "ipo", "simpo", "mappo", "mappo-simpo", "mappo-ipo"] as const;
export type PreferenceLoss = (typeof PREFERENCE_LOSSES)[number];

export interface PreferenceLossConfig {
  loss: PreferenceLoss;
  beta: number;
  /** cDPO's ε: the probability that a label is flipped (sigmoid-shaped losses only). */
  labelSmoothing: number;
  /** SimPO's target reward margin γ (simpo, mappo-simpo). */
  simpoGamma: number;
}

/** Whether the loss compares against a frozen reference (false: no reference log-probs needed). */
export const usesReference = (loss: PreferenceLoss): boolean => loss !== "simpo" && loss !== "mappo-simpo";
/** Whether the loss works on per-token averaged log-probs instead of sums. */
export const averagesTokens = (loss: PreferenceLoss): boolean => loss === "ipo" || loss === "simpo" || loss === "mappo-simpo" || loss === "mappo-ipo";
/** Whether the loss is IPO-shaped (squared) rather than sigmoid-shaped. */
export const isIpo = (loss: PreferenceLoss): boolean => loss === "ipo" || loss === "mappo-ipo";
/** MaPPO's weight on the rejected log-ratio: the prior reward gap for the mappo losses, else 1. */
const rejectedWeight = (loss: PreferenceLoss, gap: number): number => (loss.startsWith("mappo") ? gap : 1);

/** One pair as the loss sees it. Log-probs are sums over the completion's tokens. */
export interface PairLogps {
  chosen: number;
  rejected: number;
  /** Reference sums (ignored by the reference-free losses). */
  refChosen: number;
  refRejected: number;
  chosenTokens: number;
  rejectedTokens: number;
  /** MaPPO's prior reward gap Δr = score_chosen - score_rejected in [0, 1] (1 when unscored). */
  rewardGap: number;
}

export interface PairLoss {
  loss: number;
  /** d loss / d chosen (the policy's summed log-prob), likewise for rejected. */
  dChosen: number;
  dRejected: number;
  rewardChosen: number;
  rewardRejected: number;
  /** The policy log-probs the loss used (averaged for ipo/simpo). */
  logpChosen: number;
  logpRejected: number;
}

/** log σ(z), stable for large |z|. */
export function logSigmoid(z: number): number {
  return z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z));
}
const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

export function pairLoss(p: PairLogps, cfg: PreferenceLossConfig): PairLoss {
  const { loss, beta, labelSmoothing: eps, simpoGamma: gamma } = cfg;
  const avg = averagesTokens(loss);
  const ref = usesReference(loss);
  const nc = avg ? 1 / p.chosenTokens : 1; // d c̃ / d c
  const nr = avg ? 1 / p.rejectedTokens : 1;
  const c = p.chosen * nc;
  const r = p.rejected * nr;
  const a = c - (ref ? p.refChosen * nc : 0); // chosen log-ratio
  const b = r - (ref ? p.refRejected * nr : 0); // rejected log-ratio
  const w = rejectedWeight(loss, p.rewardGap);
  let value: number, dA: number, dB: number;
  if (isIpo(loss)) {
    const e = a - w * b - 1 / (2 * beta);
    value = e * e;
    dA = 2 * e;
    dB = -2 * e * w;
  } else {
    // sigmoid-shaped: loss = -(1-ε) log σ(z) - ε log σ(-z), z linear in a and b
    const z = beta * (a - w * b) - (ref ? 0 : gamma);
    value = -(1 - eps) * logSigmoid(z) - eps * logSigmoid(-z);
    const dZ = -(1 - eps) * sigmoid(-z) + eps * sigmoid(z);
    dA = dZ * beta;
    dB = -dZ * beta * w;
  }
  return { loss: value, dChosen: dA * nc, dRejected: dB * nr, rewardChosen: beta * a, rewardRejected: beta * b, logpChosen: c, logpRejected: r };
}

export const PREFERENCE_METRICS = ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"] as const;
export type PreferenceMetrics = Record<(typeof PREFERENCE_METRICS)[number], number>;

/** Sums of per-pair values, so micro-batches (or whole steps) can be combined then averaged. */
export class PreferenceTotals {
  private sums = Object.fromEntries(PREFERENCE_METRICS.map((k) => [k, 0])) as PreferenceMetrics;
  pairs = 0;
  add(l: PairLoss): void {
    const s = this.sums;
    s.loss += l.loss;
    s["rewards/chosen"] += l.rewardChosen;
    s["rewards/rejected"] += l.rewardRejected;
    s["rewards/accuracies"] += l.rewardChosen > l.rewardRejected ? 1 : 0;
    s["rewards/margins"] += l.rewardChosen - l.rewardRejected;
    s["logps/chosen"] += l.logpChosen;
    s["logps/rejected"] += l.logpRejected;
    this.pairs++;
  }
  /** Means over the pairs added. */
  means(): PreferenceMetrics {
    const n = Math.max(1, this.pairs);
    return Object.fromEntries(PREFERENCE_METRICS.map((k) => [k, this.sums[k] / n])) as PreferenceMetrics;
  }
}
