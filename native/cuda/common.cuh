// Shared helpers for the CUDA kernels: error reporting for the C ABI, warp/block reductions,
// launch sizes, the scratch workspace and the out-of-range flag word.
//
// Error style: every extern "C" entry point takes (char* err, size_t errlen) last and returns
// through CUDA_TRY / REQUIRE, so a failure becomes a message for JavaScript, never an exit().
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <cstddef>
#include <cfloat>
#include "anvil/cuda_api.h"

// The logits tile of the fused LM-head ops (linear_logprob.cu, linear_grpo_loss.cu): at most
// ANVIL_CUDA_TILE_ROWS rows and ANVIL_CUDA_TILE_FLOATS floats; overridable at build time so
// tests can force many small tiles (test/cuda_emu).
#ifndef ANVIL_CUDA_TILE_ROWS
#define ANVIL_CUDA_TILE_ROWS 4096
#endif
#ifndef ANVIL_CUDA_TILE_FLOATS
#define ANVIL_CUDA_TILE_FLOATS (32 << 20)  // 128 MiB
#endif

namespace anvil_cuda {

// Writes "<where>: cudaErrorX (code): text [expr]" into err and returns the code.
int fail(cudaError_t e, const char* expr, const char* where, char* err, size_t errlen);
// Writes a printf-style message into err and returns ANVIL_CUDA_EINVAL.
int invalid(char* err, size_t errlen, const char* where, const char* fmt, ...);

// A grow-only device scratch buffer shared by the ops that need temporaries (attention
// backward, linear log-prob tiles, sampler seeds). Safe because every op runs on the one
// default stream: a later op cannot start before an earlier op's kernels are done with it.
cudaError_t workspace(size_t bytes, void** out);

// Device word of ANVIL_BAD_* bits, raised by kernels that meet an out-of-range index (they
// skip the row instead); anvil_cuda_sync reports and clears it.
cudaError_t error_flags(unsigned int** out);
enum : unsigned int { BAD_TOKEN = 1u, BAD_POSITION = 2u, BAD_LOGITS = 4u };

// Row-major sgemm on the default stream: out (M, N) (+)= alpha * op(a) @ op(b).
// Own tiled kernel, or cuBLAS when built with ANVIL_HAVE_CUBLAS. Used by matmul and the
// linear log-prob tiles.
cudaError_t sgemm(float* out, const float* a, const float* b, int M, int N, int K, bool transA, bool transB,
                  bool accumulate, float alpha);

// bf16 weight storage (frozen weights): the upper 16 bits of an f32, widened exactly on load.
// Kernels are templated on the weight element type and read it through to_f32.
using bf16_bits = uint16_t;
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16_bits h) { return __uint_as_float(static_cast<unsigned int>(h) << 16); }

// The same sgemm with b stored in bf16 (own tiled kernel always: the tile loads widen b).
cudaError_t sgemm(float* out, const float* a, const bf16_bits* b, int M, int N, int K, bool transA, bool transB,
                  bool accumulate, float alpha);

constexpr int kWarp = 32;

// Grid for a grid-stride loop over n elements.
inline unsigned int grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > (1 << 20)) blocks = 1 << 20;
  return static_cast<unsigned int>(blocks < 1 ? 1 : blocks);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide sum / max; every thread gets the result. blockDim.x must be a multiple of 32.
// `scratch` is __shared__ T[32]; the trailing __syncthreads lets callers reuse it at once.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nwarps = blockDim.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : T(0);
  v = warp_sum(v);
  __syncthreads();
  return v;
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nwarps = blockDim.x / kWarp;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < nwarps ? scratch[lane] : -FLT_MAX;
  v = warp_max(v);
  __syncthreads();
  return v;
}

// Online log-sum-exp state of a softmax row, with the running sum of p*z for the entropy:
// m = max z, s = sum exp(z - m), w = sum exp(z - m) * z. Entropy = m + log s - w / s.
struct SoftmaxState {
  float m, s, w;
};
__host__ __device__ __forceinline__ SoftmaxState softmax_init() { return {-FLT_MAX, 0.0f, 0.0f}; }
__device__ __forceinline__ void softmax_push(SoftmaxState& st, float z) {
  if (z > st.m) {
    const float c = __expf(st.m - z);
    st.s = st.s * c + 1.0f;
    st.w = st.w * c + z;
    st.m = z;
  } else {
    const float e = __expf(z - st.m);
    if (e > 0.0f) {  // skips -inf logits (masked tokens), whose e * z would be NaN
      st.s += e;
      st.w += e * z;
    }
  }
}
__device__ __forceinline__ SoftmaxState softmax_merge(SoftmaxState a, SoftmaxState b) {
  if (b.s == 0.0f) return a;
  if (a.s == 0.0f) return b;
  const float m = fmaxf(a.m, b.m);
  const float ca = __expf(a.m - m), cb = __expf(b.m - m);
  return {m, a.s * ca + b.s * cb, a.w * ca + b.w * cb};
}
// Block-wide merge of per-thread states; every thread gets the result.
// `scratch` is __shared__ SoftmaxState[32].
__device__ __forceinline__ SoftmaxState block_softmax_merge(SoftmaxState st, SoftmaxState* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, nwarps = blockDim.x / kWarp;
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    SoftmaxState other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o),
                       __shfl_xor_sync(0xffffffffu, st.w, o)};
    st = softmax_merge(st, other);
  }
  if (lane == 0) scratch[warp] = st;
  __syncthreads();
  st = lane < nwarps ? scratch[lane] : softmax_init();
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    SoftmaxState other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o),
                       __shfl_xor_sync(0xffffffffu, st.w, o)};
    st = softmax_merge(st, other);
  }
  __syncthreads();
  return st;
}

}  // namespace anvil_cuda

// Return from an extern "C" entry point with a message when a CUDA call fails.
#define CUDA_TRY(expr)                                                                   \
  do {                                                                                   \
    cudaError_t anvil_e_ = (expr);                                                       \
    if (anvil_e_ != cudaSuccess) return anvil_cuda::fail(anvil_e_, #expr, __func__, err, errlen); \
  } while (0)
// After a kernel launch: reports bad launch configurations (and earlier asynchronous errors).
#define CHECK_LAUNCH() CUDA_TRY(cudaGetLastError())
// Argument check with a printf-style message.
#define REQUIRE(cond, ...)                                                               \
  do {                                                                                   \
    if (!(cond)) return anvil_cuda::invalid(err, errlen, __func__, __VA_ARGS__);         \
  } while (0)
