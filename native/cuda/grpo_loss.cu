// GRPO-family policy loss over per-token log-probs, with its gradient and statistics; the
// semantics are native/include/anvil/grpo_loss.h (mirrored from native/cpu/grpo_loss.cpp).
// Per token i of sequence b (mask m_i, advantage A = advantages[b]), r = exp(lp - lp_old):
//   pg = min(r A, clip(r, 1 - epsLow, 1 + epsHigh) A)     PPO clipped objective
//   dual clip c > 1 and A < 0: pg = max(pg, c A)           (binds iff r > c)
//   w = min(exp(lp_old - lp_rollout), tisCap) or 1          truncated importance weight
//   kl: k1 = d, k2 = d^2 / 2, k3 = exp(-d) + d - 1 with d = lp - lp_ref
//   loss_i = -w pg + beta kl - entropyCoef H
// dpg/dlp = r A on the unclipped branch, 0 where a clip binds. Aggregation, M_b = sum_t m,
// Bn = sequences with M_b > 0:
//   token-mean / sum M_b;  seq-mean-token-mean / (M_b Bn);  seq-mean-token-sum / Bn;
//   dr-grpo / (B maxCompletionLength)
// Stats: loss and pgLoss aggregated; kl, entropy, clip fractions and ratio mean are mask-weighted
// token means; ratio min/max over m > 0; tokens = sum m; all 0 without masked tokens.
//
// One block does everything: a small op (N = B*T floats), and one block keeps the reduction
// order fixed, so the loss is deterministic. Sums are in double, as on the CPU.
#include "common.cuh"
#include "grpo_token.cuh"

namespace {

constexpr int kThreads = 1024;
enum Stat { LOSS, PG, KL, ENT, CLIP_LOW, CLIP_HIGH, DUAL, RMIN, RMAX, RMEAN, TOKENS, NSTATS };

__global__ void __launch_bounds__(kThreads) grpo_loss_kernel(float* dlogprob, float* dentropy, float* stats, const float* logprob,
                                                             const float* old_lp, const float* ref_lp, const float* rollout_lp,
                                                             const float* entropy, const float* advantages, const float* mask, int B,
                                                             int T, float eps_low, float eps_high, float dual_clip, float beta,
                                                             int kl_kind, float entropy_coef, float tis_cap, int aggregation,
                                                             int max_len) {
  __shared__ double scratch[32];
  __shared__ float fscratch[32];
  const anvil_cuda::GrpoParams p{1.0f - eps_low, 1.0f + eps_high, dual_clip, beta, entropy_coef, tis_cap, kl_kind};

  // Pass 1: total mask mass and the number of non-empty sequences.
  double total, nonempty;
  anvil_cuda::grpo_mass(mask, B, T, scratch, total, nonempty);

  // Pass 2: per-token loss and gradients, stats in per-thread accumulators.
  double acc[NSTATS] = {};
  float r_min = FLT_MAX, r_max = -FLT_MAX;
  for (int b = 0; b < B; b++) {
    const double denom = anvil_cuda::grpo_denominator(mask, b, B, T, aggregation, max_len, total, nonempty, scratch);
    const float A = advantages[b];
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
      const int64_t i = (int64_t)b * T + t;
      const float m = mask[i];
      if (m == 0.0f || denom == 0.0) {  // padding: its log-probs may be garbage, keep NaN out
        dlogprob[i] = 0.0f;
        dentropy[i] = 0.0f;
        continue;
      }
      const float wt = (float)(m / denom);
      float r;
      const anvil_cuda::GrpoToken g =
          anvil_cuda::grpo_token(p, A, logprob[i], old_lp[i], ref_lp ? ref_lp + i : nullptr, rollout_lp ? rollout_lp + i : nullptr, &r);
      const float h = entropy ? entropy[i] : 0.0f;
      dlogprob[i] = wt * g.dlogprob;
      dentropy[i] = wt * -entropy_coef;
      acc[LOSS] += (double)wt * (g.tok_pg + beta * g.kl - entropy_coef * h);
      acc[PG] += (double)wt * g.tok_pg;
      acc[KL] += (double)m * g.kl;
      acc[ENT] += (double)m * h;
      acc[CLIP_LOW] += g.low ? m : 0.0f;
      acc[CLIP_HIGH] += g.high ? m : 0.0f;
      acc[DUAL] += g.dual ? m : 0.0f;
      acc[RMEAN] += (double)m * r;
      if (m > 0.0f) {
        r_min = fminf(r_min, r);
        r_max = fmaxf(r_max, r);
      }
    }
  }

  const double inv = total > 0.0 ? 1.0 / total : 0.0;
  r_min = -anvil_cuda::block_max(-r_min, fscratch);
  r_max = anvil_cuda::block_max(r_max, fscratch);
#pragma unroll
  for (int s = 0; s < NSTATS; s++) {
    if (s == RMIN || s == RMAX || s == TOKENS) continue;
    double v = anvil_cuda::block_sum(acc[s], scratch);
    if (s != LOSS && s != PG) v *= inv;  // token means
    if (threadIdx.x == 0) stats[s] = (float)v;
  }
  if (threadIdx.x == 0) {
    stats[RMIN] = total > 0.0 ? r_min : 0.0f;
    stats[RMAX] = total > 0.0 ? r_max : 0.0f;
    stats[TOKENS] = (float)total;
  }
}

}  // namespace

extern "C" int anvil_cuda_grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* oldLogprob,
                                    const float* refLogprob, const float* rolloutLogprob, const float* entropy, const float* advantages,
                                    const float* mask, int B, int T, float epsLow, float epsHigh, float dualClip, float beta, int kl,
                                    float entropyCoef, float tisCap, int aggregation, int maxCompletionLength, char* err, size_t errlen) {
  REQUIRE(B >= 0 && T >= 0, "B and T must be >= 0 (B=%d, T=%d)", B, T);
  REQUIRE(dualClip == 0.0f || dualClip > 1.0f, "dualClip must be 0 (off) or > 1, got %g", dualClip);
  REQUIRE(kl >= 0 && kl <= 2, "kl must be 0 (k1), 1 (k2) or 2 (k3), got %d", kl);
  REQUIRE(aggregation >= 0 && aggregation <= 3, "aggregation code must be 0..3, got %d", aggregation);
  REQUIRE(aggregation != 3 || maxCompletionLength >= 1, "dr-grpo needs maxCompletionLength >= 1, got %d", maxCompletionLength);
  REQUIRE(beta == 0.0f || refLogprob, "refLogprob is required when beta != 0");
  REQUIRE(tisCap == 0.0f || rolloutLogprob, "rolloutLogprob is required when tisCap != 0");
  REQUIRE(entropyCoef == 0.0f || entropy, "entropy is required when entropyCoef != 0");
  if ((int64_t)B * T == 0) return anvil_cuda_fill32(stats, 0u, 11, err, errlen);  // no tokens: every stat is 0
  grpo_loss_kernel<<<1, kThreads>>>(dlogprob, dentropy, stats, logprob, oldLogprob, refLogprob, rolloutLogprob, entropy, advantages, mask,
                                    B, T, epsLow, epsHigh, dualClip, beta, kl, entropyCoef, tisCap, aggregation, maxCompletionLength);
  CHECK_LAUNCH();
  return 0;
}
