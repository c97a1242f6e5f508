// logprobFromLogits: per-row log-probability of the target and entropy of
// softmax(logits / temperature), in one online pass over the row (one block per row).
//   lse = log sum exp z, logprob = z[target] - lse, entropy = lse - sum p z.
// Targets < 0: logprob 0, entropy 0 (padding); targets >= V also raise BAD_TOKEN.
#include "common.cuh"

namespace {

// logits (N, V), targets (N) -> logprob (N), entropy (N)
__global__ void logprob_from_logits_kernel(float* logprob, float* entropy, const float* logits, const int32_t* targets, int V,
                                           float inv_temp, unsigned int* flags) {
  __shared__ anvil_cuda::SoftmaxState scratch[32];
  const int64_t n = blockIdx.x;
  const int tgt = targets[n];
  if (tgt < 0 || tgt >= V) {
    if (threadIdx.x == 0) {
      logprob[n] = 0.0f;
      entropy[n] = 0.0f;
      if (tgt >= V) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    }
    return;
  }
  const float* row = logits + n * V;
  anvil_cuda::SoftmaxState st = anvil_cuda::softmax_init();
  for (int j = threadIdx.x; j < V; j += blockDim.x) anvil_cuda::softmax_push(st, row[j] * inv_temp);
  st = anvil_cuda::block_softmax_merge(st, scratch);
  if (threadIdx.x == 0) {
    const float lse = st.m + logf(st.s);
    logprob[n] = row[tgt] * inv_temp - lse;
    entropy[n] = lse - st.w / st.s;
  }
}

}  // namespace

extern "C" int anvil_cuda_logprob_from_logits(float* logprob, float* entropy, const float* logits, const int32_t* targets, int N, int V,
                                              float temperature, char* err, size_t errlen) {
  REQUIRE(temperature > 0.0f, "temperature must be > 0, got %g", temperature);
  if (N <= 0) return 0;
  REQUIRE(V > 0, "vocabulary size must be > 0");
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  logprob_from_logits_kernel<<<N, 256>>>(logprob, entropy, logits, targets, V, 1.0f / temperature, flags);
  CHECK_LAUNCH();
  return 0;
}
