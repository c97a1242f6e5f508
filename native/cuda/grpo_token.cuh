// The GRPO loss of one token and its derivative in the log-prob, shared by grpo_loss.cu and
// linear_grpo_loss.cu (the CUDA mirror of native/cpu/grpo_token.h; semantics in
// anvil/grpo_loss.h). A token's gradient needs only its own inputs and its aggregation weight,
// which is what lets linear_grpo_loss.cu finish a token block's gradient in one pass.
#pragma once
#include "common.cuh"

namespace anvil_cuda {

// Mask mass of the batch and its number of non-empty sequences (block-wide: call from every
// thread of the block; `scratch` is __shared__ double[32]).
__device__ __forceinline__ void grpo_mass(const float* mask, int B, int T, double* scratch, double& total, double& nonempty) {
  total = 0.0, nonempty = 0.0;
  for (int b = 0; b < B; b++) {
    double mb = 0.0;
    for (int t = threadIdx.x; t < T; t += blockDim.x) mb += mask[(int64_t)b * T + t];
    mb = block_sum(mb, scratch);
    total += mb;
    nonempty += mb > 0.0 ? 1.0 : 0.0;
  }
}

// The aggregation denominator of sequence b (0: its tokens get no gradient); block-wide as grpo_mass.
// aggregation: 0 token-mean, 1 seq-mean-token-mean, 2 seq-mean-token-sum, 3 dr-grpo.
__device__ __forceinline__ double grpo_denominator(const float* mask, int b, int B, int T, int aggregation, int max_len, double total,
                                                   double nonempty, double* scratch) {
  if (aggregation == 0) return total;
  if (aggregation == 2) return nonempty;
  if (aggregation == 3) return (double)B * max_len;
  double mb = 0.0;
  for (int t = threadIdx.x; t < T; t += blockDim.x) mb += mask[(int64_t)b * T + t];
  return block_sum(mb, scratch) * nonempty;
}

struct GrpoParams {
  float lo, hi, dual_clip, beta, entropy_coef, tis_cap;
  int kl_kind;  // 0 k1, 1 k2, 2 k3
};

struct GrpoToken {
  float tok_pg, kl, dlogprob;  // dlogprob: d loss_t / d lp, before the aggregation weight
  bool low, high, dual;
};

// lp, old (= lp when there is no old policy), ref / rollout: this token's values or null; A: advantage.
__device__ __forceinline__ GrpoToken grpo_token(const GrpoParams& p, float A, float lp, float old, const float* ref, const float* rollout,
                                                 float* ratio) {
  GrpoToken g;
  const float r = expf(lp - old);
  *ratio = r;
  g.low = A < 0.0f && r < p.lo;
  g.high = A > 0.0f && r > p.hi;
  g.dual = p.dual_clip > 1.0f && A < 0.0f && r > p.dual_clip;
  float pg, dpg;
  if (g.low || g.high) {
    pg = fminf(fmaxf(r, p.lo), p.hi) * A;
    dpg = 0.0f;
  } else if (g.dual) {
    pg = p.dual_clip * A;
    dpg = 0.0f;
  } else {
    pg = r * A;
    dpg = r * A;
  }
  const float w = p.tis_cap > 0.0f ? fminf(expf(old - *rollout), p.tis_cap) : 1.0f;
  g.tok_pg = -w * pg;
  g.kl = 0.0f;
  float dkl = 0.0f;
  if (ref) {
    const float d = lp - *ref;
    if (p.kl_kind == 0) {
      g.kl = d;
      dkl = 1.0f;
    } else if (p.kl_kind == 1) {
      g.kl = 0.5f * d * d;
      dkl = d;
    } else {
      const float e = expf(-d);
      g.kl = e + d - 1.0f;
      dkl = 1.0f - e;
    }
  }
  g.dlogprob = -w * dpg + p.beta * dkl;
  return g;
}

}  // namespace anvil_cuda
