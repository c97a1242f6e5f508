// Fused LM-head log-prob + entropy: logits = hidden @ weight^T / temperature are produced one
// (rows x vocab) tile at a time by sgemm into a workspace tile and consumed at once, so the
// (N, V) matrix never exists. Forward keeps an online log-sum-exp state per row across vocab
// tiles; backward recomputes each tile, turns it into dlogits in place, and feeds two sgemms:
//   dhidden (N, H) = sum over tiles dlogits @ weight[tile]       (first tile overwrites)
//   dweight[tile] (Vt, H) += dlogits^T @ hidden
// With z = logits row, p = softmax(z), lse = log sum exp z, H = entropy:
//   logprob = z[t] - lse, H = lse - sum p z,
//   dz_j = dlogprob * (1[j == t] - p_j) - dentropy * p_j * (z_j - lse + H), dlogits = dz / temperature.
// Targets < 0: logprob 0, entropy 0 and no gradient (lse is still written).
// weight may be stored in bf16 (a frozen head): the tile sgemms widen it as they load it.
// dweight may be null (a frozen head): its products are skipped.
#include <algorithm>
#include "common.cuh"

namespace {

using anvil_cuda::SoftmaxState;

// Tile shape: up to ANVIL_CUDA_TILE_ROWS rows, and as many vocab columns (a multiple of 64) as
// the budget allows.
void tile_shape(int N, int V, int& Nt, int& Vt) {
  Nt = std::min(N, ANVIL_CUDA_TILE_ROWS);
  int64_t v = static_cast<int64_t>(ANVIL_CUDA_TILE_FLOATS) / std::max(Nt, 1);
  v = std::max<int64_t>(64, v / 64 * 64);
  Vt = static_cast<int>(std::min<int64_t>(V, v));
}

__global__ void init_state_kernel(SoftmaxState* st, float* zt, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    st[i] = anvil_cuda::softmax_init();
    zt[i] = 0.0f;
  }
}

// tile (nt, vt) of z for rows n0.., vocab v0..: merges each row into st (nt), picks z[target] into zt (nt)
__global__ void tile_state_kernel(SoftmaxState* st, float* zt, const float* tile, const int32_t* targets, int vt, int v0) {
  __shared__ SoftmaxState scratch[32];
  const int r = blockIdx.x;
  const float* z = tile + (int64_t)r * vt;
  SoftmaxState s = anvil_cuda::softmax_init();
  for (int j = threadIdx.x; j < vt; j += blockDim.x) anvil_cuda::softmax_push(s, z[j]);
  s = anvil_cuda::block_softmax_merge(s, scratch);
  if (threadIdx.x == 0) {
    st[r] = anvil_cuda::softmax_merge(st[r], s);
    const int t = targets[r] - v0;
    if (t >= 0 && t < vt) zt[r] = z[t];
  }
}

// st, zt (nt), targets (nt) -> logprob, entropy, lse (nt)
__global__ void finish_kernel(float* logprob, float* entropy, float* lse, const SoftmaxState* st, const float* zt,
                              const int32_t* targets, int V, int nt, unsigned int* flags) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= nt) return;
  const SoftmaxState s = st[r];
  const float l = s.m + logf(s.s);
  lse[r] = l;
  const int t = targets[r];
  if (t < 0 || t >= V) {
    if (t >= V) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    logprob[r] = 0.0f;
    entropy[r] = 0.0f;
    return;
  }
  logprob[r] = zt[r] - l;
  entropy[r] = l - s.w / s.s;
}

// tile (nt, vt) of z -> dlogits, in place (see the header comment)
__global__ void dlogits_kernel(float* tile, const float* dlogprob, const float* dentropy, const int32_t* targets, const float* lse,
                               const float* entropy, int nt, int vt, int v0, int V, float inv_temp) {
  const int64_t total = (int64_t)nt * vt;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int r = e / vt, j = e % vt;
    const int t = targets[r];
    if (t < 0 || t >= V) {
      tile[e] = 0.0f;
      continue;
    }
    const float z = tile[e], l = lse[r];
    const float p = __expf(z - l);
    const float dz = dlogprob[r] * ((j + v0 == t ? 1.0f : 0.0f) - p) - dentropy[r] * p * (z - l + entropy[r]);
    tile[e] = dz * inv_temp;
  }
}

template <typename WT>
int linear_logprob_forward_impl(float* logprob, float* entropy, float* lse, const float* hidden, const WT* weight, const int32_t* targets, int N,
            int H, int V, float temperature, char* err, size_t errlen) {
  REQUIRE(temperature > 0.0f, "temperature must be > 0, got %g", temperature);
  REQUIRE(V > 0 && H >= 0, "bad sizes H=%d V=%d", H, V);
  if (N <= 0) return 0;
  int Nt, Vt;
  tile_shape(N, V, Nt, Vt);
  void* ws;
  CUDA_TRY(anvil_cuda::workspace((size_t)Nt * Vt * sizeof(float) + (size_t)Nt * (sizeof(SoftmaxState) + sizeof(float)), &ws));
  float* tile = static_cast<float*>(ws);                                         // (Nt, Vt)
  SoftmaxState* st = reinterpret_cast<SoftmaxState*>(tile + (size_t)Nt * Vt);    // (Nt)
  float* zt = reinterpret_cast<float*>(st + Nt);                                 // (Nt)
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  for (int n0 = 0; n0 < N; n0 += Nt) {
    const int nt = std::min(Nt, N - n0);
    init_state_kernel<<<(nt + 255) / 256, 256>>>(st, zt, nt);
    CHECK_LAUNCH();
    for (int v0 = 0; v0 < V; v0 += Vt) {
      const int vt = std::min(Vt, V - v0);
      // tile (nt, vt) = hidden[n0:] (nt, H) @ weight[v0:]^T (H, vt) / temperature
      CUDA_TRY(anvil_cuda::sgemm(tile, hidden + (size_t)n0 * H, weight + (size_t)v0 * H, nt, vt, H, false, true, false, 1.0f / temperature));
      tile_state_kernel<<<nt, 256>>>(st, zt, tile, targets + n0, vt, v0);
      CHECK_LAUNCH();
    }
    finish_kernel<<<(nt + 255) / 256, 256>>>(logprob + n0, entropy + n0, lse + n0, st, zt, targets + n0, V, nt, flags);
    CHECK_LAUNCH();
  }
  return 0;
}

template <typename WT>
int linear_logprob_backward_impl(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy, const float* hidden, const WT* weight,
             const int32_t* targets, const float* lse, const float* entropy, int N, int H, int V, float temperature, char* err,
             size_t errlen) {
  REQUIRE(temperature > 0.0f, "temperature must be > 0, got %g", temperature);
  REQUIRE(V > 0 && H >= 0, "bad sizes H=%d V=%d", H, V);
  if (N <= 0 || H == 0) return 0;
  int Nt, Vt;
  tile_shape(N, V, Nt, Vt);
  void* ws;
  CUDA_TRY(anvil_cuda::workspace((size_t)Nt * Vt * sizeof(float), &ws));
  float* tile = static_cast<float*>(ws);  // (Nt, Vt)
  const float inv_temp = 1.0f / temperature;
  for (int n0 = 0; n0 < N; n0 += Nt) {
    const int nt = std::min(Nt, N - n0);
    const float* h = hidden + (size_t)n0 * H;
    float* dh = dhidden + (size_t)n0 * H;
    for (int v0 = 0; v0 < V; v0 += Vt) {
      const int vt = std::min(Vt, V - v0);
      const WT* w = weight + (size_t)v0 * H;
      CUDA_TRY(anvil_cuda::sgemm(tile, h, w, nt, vt, H, false, true, false, inv_temp));
      dlogits_kernel<<<anvil_cuda::grid_for((int64_t)nt * vt, 256), 256>>>(tile, dlogprob + n0, dentropy + n0, targets + n0, lse + n0,
                                                                          entropy + n0, nt, vt, v0, V, inv_temp);
      CHECK_LAUNCH();
      // dhidden[n0:] (nt, H) (+)= dlogits (nt, vt) @ weight[v0:] (vt, H)
      CUDA_TRY(anvil_cuda::sgemm(dh, tile, w, nt, H, vt, false, false, v0 > 0, 1.0f));
      // dweight[v0:] (vt, H) += dlogits^T (vt, nt) @ hidden[n0:] (nt, H)
      if (dweight) CUDA_TRY(anvil_cuda::sgemm(dweight + (size_t)v0 * H, tile, h, vt, H, nt, true, false, true, 1.0f));
    }
  }
  return 0;
}

}  // namespace

extern "C" {

int anvil_cuda_linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const void* weight,
                                      int weight_dtype, const int32_t* targets, int N, int H, int V, float temperature, char* err,
                                      size_t errlen) {
  REQUIRE(weight_dtype == ANVIL_CUDA_F32 || weight_dtype == ANVIL_CUDA_BF16, "weight_dtype must be 0 (f32) or 1 (bf16), got %d", weight_dtype);
  if (weight_dtype == ANVIL_CUDA_BF16)
    return linear_logprob_forward_impl(logprob, entropy, lse, hidden, static_cast<const anvil_cuda::bf16_bits*>(weight), targets, N, H, V, temperature, err, errlen);
  return linear_logprob_forward_impl(logprob, entropy, lse, hidden, static_cast<const float*>(weight), targets, N, H, V, temperature, err, errlen);
}

int anvil_cuda_linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy, const float* hidden,
                                       const void* weight, int weight_dtype, const int32_t* targets, const float* lse, const float* entropy,
                                       int N, int H, int V, float temperature, char* err, size_t errlen) {
  REQUIRE(weight_dtype == ANVIL_CUDA_F32 || weight_dtype == ANVIL_CUDA_BF16, "weight_dtype must be 0 (f32) or 1 (bf16), got %d", weight_dtype);
  if (weight_dtype == ANVIL_CUDA_BF16)
    return linear_logprob_backward_impl(dhidden, dweight, dlogprob, dentropy, hidden, static_cast<const anvil_cuda::bf16_bits*>(weight), targets, lse, entropy,
                    N, H, V, temperature, err, errlen);
  return linear_logprob_backward_impl(dhidden, dweight, dlogprob, dentropy, hidden, static_cast<const float*>(weight), targets, lse, entropy, N, H, V,
                  temperature, err, errlen);
}

}  // extern "C"
