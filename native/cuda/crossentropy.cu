// Cross-entropy over a full logits row: loss = logsumexp(logits) - logits[target].
// One block per row; the forward is a single online log-sum-exp pass. Targets < 0 are
// ignored (loss 0, gradient 0); targets >= V raise BAD_TOKEN and are treated the same way.
#include "common.cuh"

namespace {

constexpr int kThreads = 256;

__device__ float row_lse(const float* z, int V) {
  __shared__ anvil_cuda::SoftmaxState scratch[32];
  anvil_cuda::SoftmaxState st = anvil_cuda::softmax_init();
  for (int j = threadIdx.x; j < V; j += blockDim.x) anvil_cuda::softmax_push(st, z[j]);
  st = anvil_cuda::block_softmax_merge(st, scratch);
  return st.m + logf(st.s);
}

// logits (N, V), targets (N) -> loss (N)
__global__ void cross_entropy_forward_kernel(float* loss, const float* logits, const int32_t* targets, int V, unsigned int* flags) {
  const int64_t n = blockIdx.x;
  const int tgt = targets[n];
  if (tgt < 0 || tgt >= V) {
    if (threadIdx.x == 0) {
      loss[n] = 0.0f;
      if (tgt >= V) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    }
    return;
  }
  const float* z = logits + n * V;
  const float lse = row_lse(z, V);
  if (threadIdx.x == 0) loss[n] = lse - z[tgt];
}

// dloss (N), logits (N, V), targets (N) -> dlogits (N, V) = (softmax - onehot) * dloss
__global__ void cross_entropy_backward_kernel(float* dlogits, const float* dloss, const float* logits, const int32_t* targets, int V,
                                              unsigned int* flags) {
  const int64_t n = blockIdx.x;
  const int tgt = targets[n];
  float* dz = dlogits + n * V;
  if (tgt < 0 || tgt >= V) {
    if (threadIdx.x == 0 && tgt >= V) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    for (int j = threadIdx.x; j < V; j += blockDim.x) dz[j] = 0.0f;
    return;
  }
  const float* z = logits + n * V;
  const float lse = row_lse(z, V);
  const float g = dloss[n];
  for (int j = threadIdx.x; j < V; j += blockDim.x) dz[j] = (__expf(z[j] - lse) - (j == tgt ? 1.0f : 0.0f)) * g;
}

}  // namespace

extern "C" {

int anvil_cuda_cross_entropy_forward(float* loss, const float* logits, const int32_t* targets, int N, int V, char* err, size_t errlen) {
  if (N <= 0) return 0;
  REQUIRE(V > 0, "vocabulary size must be > 0");
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  cross_entropy_forward_kernel<<<N, kThreads>>>(loss, logits, targets, V, flags);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const int32_t* targets, int N, int V,
                                      char* err, size_t errlen) {
  if (N <= 0) return 0;
  REQUIRE(V > 0, "vocabulary size must be > 0");
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  cross_entropy_backward_kernel<<<N, kThreads>>>(dlogits, dloss, logits, targets, V, flags);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
