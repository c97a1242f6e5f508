// sgemm, row-major: out (M, N) (+)= alpha * op(a) @ op(b); op(a) (M, K), op(b) (K, N).
//   transA: a is stored (K, M); transB: b is stored (N, K) (the nn.Linear weight layout).
// Without cuBLAS: a classic shared-memory tiled kernel. A 64x64 tile of out per block of
// 256 threads, each thread owning a 4x4 grid of outputs strided by 16 (so shared-memory reads
// are conflict-free and the final stores coalesce); K advances in slices of 16.
// With ANVIL_HAVE_CUBLAS: cublasSgemm on the transposed (column-major) problem.
// b may be stored in bf16 (frozen weights): the same tiled kernel, widening b to f32 as it
// loads the tile into shared memory (cuBLAS has no f32 x bf16 product, so it is not used then).
#include "common.cuh"
#ifdef ANVIL_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace {

constexpr int BM = 64, BN = 64, BK = 16, kThreads = 256;

template <bool TA, bool TB, typename WT>
__global__ void __launch_bounds__(kThreads) sgemm_kernel(float* out, const float* a, const WT* b, int M, int N, int K,
                                                         bool accumulate, float alpha) {
  __shared__ float As[BK][BM + 4];  // As[k][i] = op(a)[row0 + i][k0 + k]
  __shared__ float Bs[BK][BN + 4];  // Bs[k][j] = op(b)[k0 + k][col0 + j]
  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
  float acc[4][4] = {};

  for (int k0 = 0; k0 < K; k0 += BK) {
    // Each thread loads 4 elements of each tile; the fast index follows the stored layout
    // so consecutive threads read consecutive addresses.
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int e = t + kThreads * r;
      const int i = TA ? e % BM : e / BK, ka = TA ? e / BM : e % BK;
      const int gi = row0 + i, gk = k0 + ka;
      float va = 0.0f;
      if (gi < M && gk < K) va = TA ? a[(int64_t)gk * M + gi] : a[(int64_t)gi * K + gk];
      As[ka][i] = va;
      const int j = TB ? e / BK : e % BN, kb = TB ? e % BK : e / BN;
      const int gj = col0 + j, gk2 = k0 + kb;
      float vb = 0.0f;
      if (gj < N && gk2 < K) vb = anvil_cuda::to_f32(TB ? b[(int64_t)gj * K + gk2] : b[(int64_t)gk2 * N + gj]);
      Bs[kb][j] = vb;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; k++) {
      float ar[4], br[4];
#pragma unroll
      for (int r = 0; r < 4; r++) ar[r] = As[k][ty + 16 * r];
#pragma unroll
      for (int c = 0; c < 4; c++) br[c] = Bs[k][tx + 16 * c];
#pragma unroll
      for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] += ar[r] * br[c];
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 4; r++) {
    const int gi = row0 + ty + 16 * r;
    if (gi >= M) continue;
#pragma unroll
    for (int c = 0; c < 4; c++) {
      const int gj = col0 + tx + 16 * c;
      if (gj >= N) continue;
      float* o = out + (int64_t)gi * N + gj;
      // Never read `out` when overwriting: it may hold garbage (even NaN).
      *o = accumulate ? *o + alpha * acc[r][c] : alpha * acc[r][c];
    }
  }
}

#ifdef ANVIL_HAVE_CUBLAS
cublasHandle_t g_cublas = nullptr;
#endif

template <typename WT>
cudaError_t tiled_sgemm(float* out, const float* a, const WT* b, int M, int N, int K, bool transA, bool transB,
                        bool accumulate, float alpha) {
  dim3 grid((N + BN - 1) / BN, (M + BM - 1) / BM);
  if (grid.y > 65535) return cudaErrorInvalidConfiguration;  // M > 4M rows: not a shape we meet
  if (transA && transB) sgemm_kernel<true, true, WT><<<grid, kThreads>>>(out, a, b, M, N, K, accumulate, alpha);
  else if (transA) sgemm_kernel<true, false, WT><<<grid, kThreads>>>(out, a, b, M, N, K, accumulate, alpha);
  else if (transB) sgemm_kernel<false, true, WT><<<grid, kThreads>>>(out, a, b, M, N, K, accumulate, alpha);
  else sgemm_kernel<false, false, WT><<<grid, kThreads>>>(out, a, b, M, N, K, accumulate, alpha);
  return cudaGetLastError();
}

}  // namespace

namespace anvil_cuda {

cudaError_t sgemm(float* out, const float* a, const float* b, int M, int N, int K, bool transA, bool transB,
                  bool accumulate, float alpha) {
  if (M <= 0 || N <= 0) return cudaSuccess;
#ifdef ANVIL_HAVE_CUBLAS
  if (!g_cublas && cublasCreate(&g_cublas) != CUBLAS_STATUS_SUCCESS) return cudaErrorUnknown;
  // Row-major out = op(a) op(b) is column-major out^T = op(b)^T op(a)^T.
  const float beta = accumulate ? 1.0f : 0.0f;
  cublasStatus_t s = cublasSgemm(g_cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                 &alpha, b, transB ? K : N, a, transA ? M : K, &beta, out, N);
  return s == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
#else
  return tiled_sgemm(out, a, b, M, N, K, transA, transB, accumulate, alpha);
#endif
}

cudaError_t sgemm(float* out, const float* a, const bf16_bits* b, int M, int N, int K, bool transA, bool transB,
                  bool accumulate, float alpha) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  return tiled_sgemm(out, a, b, M, N, K, transA, transB, accumulate, alpha);
}

}  // namespace anvil_cuda

extern "C" int anvil_cuda_matmul(float* out, const float* a, const void* b, int b_dtype, int M, int N, int K, int transA,
                                 int transB, int accumulate, float alpha, char* err, size_t errlen) {
  REQUIRE(M >= 0 && N >= 0 && K >= 0, "negative dimension (M=%d, N=%d, K=%d)", M, N, K);
  REQUIRE(b_dtype == ANVIL_CUDA_F32 || b_dtype == ANVIL_CUDA_BF16, "b_dtype must be 0 (f32) or 1 (bf16), got %d", b_dtype);
  if (b_dtype == ANVIL_CUDA_BF16)
    CUDA_TRY(anvil_cuda::sgemm(out, a, static_cast<const anvil_cuda::bf16_bits*>(b), M, N, K, transA != 0, transB != 0,
                               accumulate != 0, alpha));
  else
    CUDA_TRY(anvil_cuda::sgemm(out, a, static_cast<const float*>(b), M, N, K, transA != 0, transB != 0, accumulate != 0,
                               alpha));
  return 0;
}
