// Elementwise ops on flat f32 vectors: add, accumulate, scale, sumSquares.
// Grid-stride loops; n is an element count (int64).
#include "common.cuh"

namespace {

// out (n) = a (n) + b (n); out may alias a or b
__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = a[i] + b[i];
}

// dst (n) += alpha * src (n)
__global__ void accumulate_kernel(float* dst, const float* src, float alpha, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] += alpha * src[i];
}

// t (n) *= alpha
__global__ void scale_kernel(float* t, float alpha, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    t[i] *= alpha;
}

// out (1) += sum(t^2): one partial per block, added atomically (order varies in the last bits).
__global__ void sum_squares_kernel(float* out, const float* t, int64_t n) {
  __shared__ float scratch[32];
  float acc = 0.0f;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    acc += t[i] * t[i];
  acc = anvil_cuda::block_sum(acc, scratch);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

constexpr int kThreads = 256;

}  // namespace

using anvil_cuda::grid_for;

extern "C" {

int anvil_cuda_add(float* out, const float* a, const float* b, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  add_kernel<<<grid_for(n, kThreads), kThreads>>>(out, a, b, n);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_accumulate(float* dst, const float* src, float alpha, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  accumulate_kernel<<<grid_for(n, kThreads), kThreads>>>(dst, src, alpha, n);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_scale(float* t, float alpha, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  scale_kernel<<<grid_for(n, kThreads), kThreads>>>(t, alpha, n);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_sum_squares(float* out, const float* t, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  // Few blocks: each does a long strided sum, so only a handful of atomics hit `out`.
  unsigned int blocks = grid_for(n, kThreads * 16);
  if (blocks > 1024) blocks = 1024;
  sum_squares_kernel<<<blocks, kThreads>>>(out, t, n);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
