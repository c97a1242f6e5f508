// GRPO-family policy loss, forward and backward in one pass over the tokens.
// B = sequences, T = padded completion length, N = B * T (per-token inputs are (B, T) row-major).
//
// Per token (mask m > 0), with r = exp(lp - lp_old) and A = advantages[b]:
//   pg       = min(r * A, clip(r, 1 - epsLow, 1 + epsHigh) * A)          PPO clipped objective
//   dual     : when dualClip = c > 1 and A < 0: pg = max(pg, c * A)       (binds iff r > c)
//   w        = min(exp(lp_old - lp_rollout), tisCap) when tisCap > 0, else 1 (a constant)
//   pgLoss_t = -w * pg
//   kl       = k1: lp - lp_ref | k2: 0.5 (lp - lp_ref)^2 | k3: exp(lp_ref - lp) - (lp_ref - lp) - 1
//   loss_t   = pgLoss_t + beta * kl - entropyCoef * H_t
// d pg / d lp = r * A where the unclipped branch is active, 0 where a clip binds:
//   clip low  : A < 0 and r < 1 - epsLow      clip high : A > 0 and r > 1 + epsHigh
//   dual clip : A < 0 and r > c (only when dual clip is on)
// Aggregation, with m the mask (0/1, used as a weight), M_b = sum_t m, Bn = #sequences with M_b > 0:
//   token-mean            L = sum m loss_t / sum M_b
//   seq-mean-token-mean   L = (1/Bn) sum_b (sum_t m loss_t / M_b)
//   seq-mean-token-sum    L = (1/Bn) sum_b sum_t m loss_t
//   dr-grpo               L = sum m loss_t / (B * maxCompletionLength)
// Empty denominators give L = 0 and zero gradients. Outputs: dlogprob = dL/dlp and
// dentropy = dL/dH per token (0 where m = 0), both overwritten, and stats (see GRPO_STATS):
//   loss, pgLoss (L of pgLoss_t alone), klMean, entropyMean (mask-weighted token means; 0 without
//   ref / entropy inputs), clipLowFrac, clipHighFrac, dualClipFrac (mask-weighted fraction of
//   tokens where that clip binds), ratioMin, ratioMax, ratioMean (over m > 0), tokens = sum m.
// With no masked tokens every stat is 0.
#pragma once
#include <cstdint>

namespace anvil::cpu {

enum class KlEstimator : int { k1 = 0, k2 = 1, k3 = 2 };
enum class LossAggregation : int { token_mean = 0, seq_mean_token_mean = 1, seq_mean_token_sum = 2, dr_grpo = 3 };

struct GrpoOptions {
  int64_t B = 0, T = 0;
  double eps_low = 0.2, eps_high = 0.2;
  double dual_clip = 0;  // 0 = off, else > 1
  double beta = 0;
  KlEstimator kl = KlEstimator::k3;
  double entropy_coef = 0;
  double tis_cap = 0;  // 0 = off
  LossAggregation aggregation = LossAggregation::token_mean;
  int64_t max_completion_length = 0;  // dr-grpo denominator length
};

constexpr int kGrpoStats = 11;  // GRPO_STATS.length in src/backend/backend.ts

// logprob, old_logprob, ref_logprob?, rollout_logprob?, entropy?, mask (N); advantages (B)
// -> dlogprob (N), dentropy (N), stats (kGrpoStats). Optional inputs may be null when unused.
void grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* old_logprob,
               const float* ref_logprob, const float* rollout_logprob, const float* entropy, const float* advantages,
               const float* mask, const GrpoOptions& opts);

}  // namespace anvil::cpu
