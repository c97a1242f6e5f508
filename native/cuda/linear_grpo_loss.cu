// hidden (N, H), weight (V, H), targets (N), old?, ref?, rollout? (N), advantages (B), mask (N)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (11), logprob (N), entropy (N)
//
// The CUDA mirror of native/cpu/linear_grpo_loss.cpp (semantics: anvil/linear_grpo_loss.h).
// Each token's aggregation weight comes from the mask first (grpo_weights_kernel); then blocks
// of Nt rows, each finished before the next:
//   z (Nt, V) = hidden_block @ weight^T / T                          sgemm
//   per row (row_kernel, one CUDA block a row): log-sum-exp, entropy, log-prob, the token's
//   GRPO gradient (grpo_token.cuh, as grpo_loss.cu), then z -> dlogits in place
//   dhidden_block = dlogits @ weight;  dweight += dlogits^T @ hidden_block     two sgemms
// 3 products of the logits instead of linear_logprob's 4; (N, V) never exists. The stats are
// grpo_loss.cu's own, run on the log-probs and entropies once all blocks are done, so they are
// the grpoLoss stats by construction. Simple on purpose: blocks are contiguous (rows outside the
// loss are computed with a zero gradient, not skipped).
#include <algorithm>

#include "common.cuh"
#include "grpo_token.cuh"

namespace {

using anvil_cuda::GrpoParams;
using anvil_cuda::SoftmaxState;

// wt (N) = mask / the aggregation denominator of its sequence (0 when either is 0). One block.
__global__ void grpo_weights_kernel(float* wt, const float* mask, int B, int T, int aggregation, int max_len) {
  __shared__ double scratch[32];
  double total, nonempty;
  anvil_cuda::grpo_mass(mask, B, T, scratch, total, nonempty);
  for (int b = 0; b < B; b++) {
    const double denom = anvil_cuda::grpo_denominator(mask, b, B, T, aggregation, max_len, total, nonempty, scratch);
    for (int t = threadIdx.x; t < T; t += blockDim.x) {
      const int64_t i = (int64_t)b * T + t;
      wt[i] = mask[i] == 0.0f || denom == 0.0 ? 0.0f : (float)(mask[i] / denom);
    }
  }
}

// Row r of the block starting at row n0: z (V) -> dlogits (V) in place; logprob, entropy of the row.
__global__ void row_kernel(float* z, float* logprob, float* entropy, const int32_t* targets, const float* wt, const float* old_lp,
                           const float* ref_lp, const float* rollout_lp, const float* advantages, GrpoParams p, int T, int V, int n0,
                           float inv_temp, float loss_scale, unsigned int* flags) {
  __shared__ SoftmaxState scratch[32];
  const int64_t i = n0 + blockIdx.x;
  float* zr = z + (int64_t)blockIdx.x * V;
  SoftmaxState s = anvil_cuda::softmax_init();
  for (int j = threadIdx.x; j < V; j += blockDim.x) anvil_cuda::softmax_push(s, zr[j]);
  s = anvil_cuda::block_softmax_merge(s, scratch);
  const float l = s.m + logf(s.s), h = l - s.w / s.s;
  const int t = targets[i];
  const bool ok = t >= 0 && t < V;
  if (t >= V && threadIdx.x == 0) atomicOr(flags, anvil_cuda::BAD_TOKEN);
  const float lp = ok ? zr[t] - l : 0.0f, ent = ok ? h : 0.0f;
  // The token's gradient, as grpo_loss.cu computes it (then scaled as a scale() of it would be).
  float dlp = 0.0f, dent = 0.0f;
  if (wt[i] != 0.0f) {
    float ratio;
    const anvil_cuda::GrpoToken g = anvil_cuda::grpo_token(p, advantages[i / T], lp, old_lp ? old_lp[i] : lp, ref_lp ? ref_lp + i : nullptr,
                                                           rollout_lp ? rollout_lp + i : nullptr, &ratio);
    dlp = wt[i] * g.dlogprob * loss_scale;
    dent = wt[i] * -p.entropy_coef * loss_scale;
  }
  if (threadIdx.x == 0) {
    logprob[i] = lp;
    entropy[i] = ent;
  }
  __syncthreads();  // every thread has read zr[t] before any overwrites it
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    if (!ok) {
      zr[j] = 0.0f;
      continue;
    }
    const float zj = zr[j], pj = __expf(zj - l);
    zr[j] = (dlp * ((j == t ? 1.0f : 0.0f) - pj) - dent * pj * (zj - l + h)) * inv_temp;
  }
}

}  // namespace

extern "C" int anvil_cuda_linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy, const float* hidden,
                                           const float* weight, const int32_t* targets, const float* oldLogprob, const float* refLogprob,
                                           const float* rolloutLogprob, const float* advantages, const float* mask, int H, int V,
                                           float temperature, float lossScale, int B, int T, float epsLow, float epsHigh, float dualClip,
                                           float beta, int kl, float entropyCoef, float tisCap, int aggregation, int maxCompletionLength,
                                           char* err, size_t errlen) {
  REQUIRE(temperature > 0.0f, "temperature must be > 0, got %g", temperature);
  REQUIRE(V > 0 && H > 0 && B >= 0 && T >= 0, "bad sizes B=%d T=%d H=%d V=%d", B, T, H, V);
  REQUIRE(aggregation >= 0 && aggregation <= 3, "aggregation code must be 0..3, got %d", aggregation);
  REQUIRE(aggregation != 3 || maxCompletionLength >= 1, "dr-grpo needs maxCompletionLength >= 1, got %d", maxCompletionLength);
  REQUIRE(kl >= 0 && kl <= 2, "kl must be 0 (k1), 1 (k2) or 2 (k3), got %d", kl);
  REQUIRE(beta == 0.0f || refLogprob, "refLogprob is required when beta != 0");
  REQUIRE(tisCap == 0.0f || rolloutLogprob, "rolloutLogprob is required when tisCap != 0");
  const int64_t N = (int64_t)B * T;
  if (N == 0) return anvil_cuda_fill32(stats, 0u, 11, err, errlen);
  // Rows per block: as many whole vocabulary rows as the logits tile budget holds.
  const int Nt = (int)std::min<int64_t>({N, ANVIL_CUDA_TILE_ROWS, std::max<int64_t>(1, ANVIL_CUDA_TILE_FLOATS / V)});
  void* ws;
  CUDA_TRY(anvil_cuda::workspace(((size_t)Nt * V + 3 * (size_t)N) * sizeof(float), &ws));
  float* z = static_cast<float*>(ws);  // (Nt, V)
  float* wt = z + (size_t)Nt * V;      // (N)
  float* spare = wt + N;               // (2N): grpo_loss's gradients, unused
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  grpo_weights_kernel<<<1, 1024>>>(wt, mask, B, T, aggregation, maxCompletionLength);
  CHECK_LAUNCH();
  const GrpoParams p{1.0f - epsLow, 1.0f + epsHigh, dualClip, beta, entropyCoef, tisCap, kl};
  const float inv_temp = 1.0f / temperature;
  for (int64_t n0 = 0; n0 < N; n0 += Nt) {
    const int nt = (int)std::min<int64_t>(Nt, N - n0);
    const float* h = hidden + n0 * H;
    CUDA_TRY(anvil_cuda::sgemm(z, h, weight, nt, V, H, false, true, false, inv_temp));
    row_kernel<<<nt, 256>>>(z, logprob, entropy, targets, wt, oldLogprob, refLogprob, rolloutLogprob, advantages, p, T, V, (int)n0, inv_temp,
                            lossScale, flags);
    CHECK_LAUNCH();
    CUDA_TRY(anvil_cuda::sgemm(dhidden + n0 * H, z, weight, nt, H, V, false, false, false, 1.0f));
    CUDA_TRY(anvil_cuda::sgemm(dweight, z, h, V, H, nt, true, false, true, 1.0f));
  }
  // The stats (and validation of the loss options) from the GRPO loss itself.
  return anvil_cuda_grpo_loss(spare, spare + N, stats, logprob, oldLogprob ? oldLogprob : logprob, refLogprob, rolloutLogprob, entropy,
                              advantages, mask, B, T, epsLow, epsHigh, dualClip, beta, kl, entropyCoef, tisCap, aggregation,
                              maxCompletionLength, err, errlen);
}
