// GRPO-family policy loss over per-token log-probs, with its gradient and statistics.
// Per token i of sequence b (mask m_i, advantage A = advantages[b]):
//   r = exp(lp - lp_old)
//   pg = -min(r A, clip(r, 1 - epsLow, 1 + epsHigh) A)         PPO clipped surrogate
//   A < 0 and dualClip c > 0: pg = min(pg, -c A)                 dual clip
//   tisCap C > 0: pg *= min(exp(lp_old - lp_rollout), C)         truncated importance weight
//   kl: k1 = d, k2 = d^2 / 2, k3 = exp(-d) + d - 1 with d = lp - lp_ref
//   l = pg + beta kl - entropyCoef H
// The loss is sum_i w_i l_i with aggregation weights
//   token-mean m_i / sum(m); seq-mean-token-mean m_i / (n_b B); seq-mean-token-sum m_i / B;
//   dr-grpo m_i / (B maxCompletionLength)   (n_b = tokens of sequence b; empty sequences count in B)
// and dlogprob_i = w_i dl/dlp, dentropy_i = -w_i entropyCoef. Stats (GRPO_STATS order) are token
// means over the mask, except loss and pgLoss which use the aggregation weights.
//
// One block does everything: it is a small op (N = B*T floats) and one block keeps the
// reduction order fixed, so the loss is deterministic.
#include "common.cuh"

namespace {

constexpr int kThreads = 1024;
enum Stat { LOSS, PG, KL, ENT, CLIP_LOW, CLIP_HIGH, DUAL, RMIN, RMAX, RMEAN, TOKENS, NSTATS };

__device__ float block_sum_all(float v, float* scratch) { return anvil_cuda::block_sum(v, scratch); }

__global__ void __launch_bounds__(kThreads) grpo_loss_kernel(float* dlogprob, float* dentropy, float* stats, const float* logprob,
                                                             const float* old_lp, const float* ref_lp, const float* rollout_lp,
                                                             const float* entropy, const float* advantages, const float* mask, int B,
                                                             int T, float eps_low, float eps_high, float dual_clip, float beta,
                                                             int kl_kind, float entropy_coef, float tis_cap, int aggregation,
                                                             int max_len) {
  __shared__ float scratch[32];
  const int64_t N = (int64_t)B * T;

  float total = 0.0f;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) total += mask[i];
  total = block_sum_all(total, scratch);

  float acc[NSTATS] = {};
  acc[RMIN] = FLT_MAX;
  acc[RMAX] = -FLT_MAX;
  for (int b = 0; b < B; b++) {
    float seq_weight;  // w_i = m_i * seq_weight
    if (aggregation == 0) {
      seq_weight = total > 0.0f ? 1.0f / total : 0.0f;
    } else if (aggregation == 1) {
      float n_b = 0.0f;
      for (int t = threadIdx.x; t < T; t += blockDim.x) n_b += mask[(int64_t)b * T + t];
      n_b = block_sum_all(n_b, scratch);
      seq_weight = n_b > 0.0f ? 1.0f / (n_b * B) : 0.0f;
    } else if (aggregation == 2) {
      seq_weight = 1.0f / B;
    } else {
      seq_weight = 1.0f / ((float)B * max_len);
    }
    const float A = advantages[b];
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
      const int64_t i = (int64_t)b * T + t;
      const float m = mask[i];
      if (m == 0.0f) {  // padding: its log-probs may be garbage, keep NaN out of everything
        dlogprob[i] = 0.0f;
        dentropy[i] = 0.0f;
        continue;
      }
      const float lp = logprob[i];
      const float r = __expf(lp - old_lp[i]);
      const float s1 = r * A, s2 = fminf(fmaxf(r, 1.0f - eps_low), 1.0f + eps_high) * A;
      float pg = -fminf(s1, s2);
      float dpg = s1 <= s2 ? -A * r : 0.0f;  // the clipped branch has no gradient
      if (A < 0.0f && r < 1.0f - eps_low) acc[CLIP_LOW] += m;
      if (A > 0.0f && r > 1.0f + eps_high) acc[CLIP_HIGH] += m;
      if (dual_clip > 0.0f && A < 0.0f && pg > -dual_clip * A) {
        pg = -dual_clip * A;
        dpg = 0.0f;
        acc[DUAL] += m;
      }
      if (tis_cap > 0.0f && rollout_lp) {
        const float w = fminf(__expf(old_lp[i] - rollout_lp[i]), tis_cap);
        pg *= w;
        dpg *= w;
      }
      float kl = 0.0f, dkl = 0.0f;
      if (ref_lp) {
        const float d = lp - ref_lp[i];
        if (kl_kind == 0) {
          kl = d;
          dkl = 1.0f;
        } else if (kl_kind == 1) {
          kl = 0.5f * d * d;
          dkl = d;
        } else {
          const float e = __expf(-d);
          kl = e + d - 1.0f;
          dkl = 1.0f - e;
        }
      }
      const float H = entropy ? entropy[i] : 0.0f;
      const float w = m * seq_weight;
      dlogprob[i] = w * (dpg + beta * dkl);
      dentropy[i] = -w * entropy_coef;
      acc[LOSS] += w * (pg + beta * kl - entropy_coef * H);
      acc[PG] += w * pg;
      acc[KL] += m * kl;
      acc[ENT] += m * H;
      acc[RMIN] = fminf(acc[RMIN], r);
      acc[RMAX] = fmaxf(acc[RMAX], r);
      acc[RMEAN] += m * r;
    }
  }

#pragma unroll
  for (int s = 0; s < NSTATS; s++) {
    if (s == TOKENS) continue;
    float v;
    if (s == RMIN) v = -anvil_cuda::block_max(-acc[s], scratch);
    else if (s == RMAX) v = anvil_cuda::block_max(acc[s], scratch);
    else v = block_sum_all(acc[s], scratch);
    if (threadIdx.x == 0) {
      const bool token_mean = s == KL || s == ENT || s == CLIP_LOW || s == CLIP_HIGH || s == DUAL || s == RMEAN;
      if (total == 0.0f && s != LOSS && s != PG) v = 0.0f;
      else if (token_mean) v /= total;
      stats[s] = v;
    }
  }
  if (threadIdx.x == 0) stats[TOKENS] = total;
}

}  // namespace

extern "C" int anvil_cuda_grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* oldLogprob,
                                    const float* refLogprob, const float* rolloutLogprob, const float* entropy, const float* advantages,
                                    const float* mask, int B, int T, float epsLow, float epsHigh, float dualClip, float beta, int kl,
                                    float entropyCoef, float tisCap, int aggregation, int maxCompletionLength, char* err, size_t errlen) {
  REQUIRE(B >= 1 && T >= 1, "B and T must be >= 1 (B=%d, T=%d)", B, T);
  REQUIRE(kl >= 0 && kl <= 2, "kl must be 0 (k1), 1 (k2) or 2 (k3), got %d", kl);
  REQUIRE(aggregation >= 0 && aggregation <= 3, "aggregation code must be 0..3, got %d", aggregation);
  REQUIRE(aggregation != 3 || maxCompletionLength >= 1, "dr-grpo needs maxCompletionLength >= 1, got %d", maxCompletionLength);
  REQUIRE(beta == 0.0f || refLogprob, "refLogprob is required when beta != 0");
  REQUIRE(tisCap == 0.0f || rolloutLogprob, "rolloutLogprob is required when tisCap != 0");
  REQUIRE(entropyCoef == 0.0f || entropy, "entropy is required when entropyCoef != 0");
  grpo_loss_kernel<<<1, kThreads>>>(dlogprob, dentropy, stats, logprob, oldLogprob, refLogprob, rolloutLogprob, entropy, advantages, mask,
                                    B, T, epsLow, epsHigh, dualClip, beta, kl, entropyCoef, tisCap, aggregation, maxCompletionLength);
  CHECK_LAUNCH();
  return 0;
}
