// Fused sampler: ids[b] ~ softmax(logits[b] / temperature) truncated by top-k, top-p and
// min-p, without sorting the vocabulary. One block per row.
//
// Truncation is done with thresholds found by bisection on the order-preserving integer key
// of the (tempered) logits: 32 counting passes over the row build the largest key whose
// "at least this large" set still satisfies the rule, bit by bit, so the threshold is exact.
//   top-k: keep z >= the k-th largest z (ties at the threshold are all kept)
//   top-p: over the top-k set, keep the most likely tokens down to the first key at which the
//          kept mass reaches topP (the smallest such set, ties kept)
//   min-p: keep p >= minP * max p, i.e. exp(z - max z) >= minP
// Then one uniform u from the row's seed picks the token whose cumulative kept weight (in
// vocabulary order) first exceeds u * total. greedy or temperature <= 0: argmax, lowest index.
#include <cmath>
#include "common.cuh"

namespace {

constexpr int kThreads = 256;

// Float -> unsigned key with the same order (negative floats flipped, positives offset).
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Counter-based uniform in [0, 1): SplitMix64 finalizer of the seed, top 24 bits.
__device__ __forceinline__ float uniform_from_seed(uint32_t seed) {
  uint64_t z = static_cast<uint64_t>(seed) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

// Largest key k such that sum over {j : key_j >= k and key_j >= floor_key} of weight_j >= need,
// where weight is 1 (counting, for top-k) or exp(z - zmax) (mass, for top-p).
__device__ uint32_t threshold_key(const float* row, int V, float inv_temp, float zmax, uint32_t floor_key, bool by_mass, float need,
                                  float* scratch) {
  uint32_t key = 0;
  for (int bit = 31; bit >= 0; bit--) {
    const uint32_t cand = key | (1u << bit);
    float acc = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float z = row[j] * inv_temp;
      const uint32_t k = order_key(z);
      if (k >= cand && k >= floor_key) acc += by_mass ? __expf(z - zmax) : 1.0f;
    }
    acc = anvil_cuda::block_sum(acc, scratch);
    if (acc >= need) key = cand;
  }
  return key;
}

// logits (B, V), seeds (B) -> ids (B)
__global__ void __launch_bounds__(kThreads) sample_kernel(int32_t* ids, const float* logits, const uint32_t* seeds, int V, float temperature,
                                                          int top_k, float top_p, float min_p, bool greedy) {
  __shared__ float scratch[32];
  __shared__ float chunk_sum[kThreads];
  __shared__ int chosen;
  const float* row = logits + (int64_t)blockIdx.x * V;

  // Argmax (lowest index among equal maxima): needed for greedy and as the max for softmax.
  float best = -INFINITY;
  int best_j = 0x7fffffff;
  for (int j = threadIdx.x; j < V; j += blockDim.x)
    if (row[j] > best) best = row[j], best_j = j;  // strided ascending j: first max per thread
  const float row_max = anvil_cuda::block_max(best, scratch);
  float cand = (best == row_max) ? (float)best_j : 3.0e38f;
  cand = -anvil_cuda::block_max(-cand, scratch);  // lowest index holding the max
  const int argmax = cand < (float)V ? static_cast<int>(cand) : 0;  // 0 if the row is all -inf / NaN
  if (greedy || temperature <= 0.0f || V == 1) {
    if (threadIdx.x == 0) ids[blockIdx.x] = argmax;
    return;
  }

  const float inv_temp = 1.0f / temperature;
  const float zmax = row_max * inv_temp;
  uint32_t k_floor = 0;  // top-k threshold key (0 = keep everything)
  if (top_k > 0 && top_k < V) k_floor = threshold_key(row, V, inv_temp, zmax, 0, false, (float)top_k, scratch);
  if (top_p < 1.0f) {
    float mass = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float z = row[j] * inv_temp;
      if (order_key(z) >= k_floor) mass += __expf(z - zmax);
    }
    mass = anvil_cuda::block_sum(mass, scratch);
    k_floor = threshold_key(row, V, inv_temp, zmax, k_floor, true, top_p * mass, scratch);
  }
  const float w_floor = min_p > 0.0f ? min_p : 0.0f;  // exp(z - zmax) >= minP

  // Each thread owns a contiguous chunk of the vocabulary, so "first index whose prefix weight
  // exceeds the target" is: find the chunk by a scan of chunk sums, then walk inside it.
  const int chunk = (V + blockDim.x - 1) / blockDim.x;
  const int j0 = threadIdx.x * chunk, j1 = min(V, j0 + chunk);
  float s = 0.0f;
  for (int j = j0; j < j1; j++) {
    const float z = row[j] * inv_temp, w = __expf(z - zmax);
    if (order_key(z) >= k_floor && w >= w_floor) s += w;
  }
  chunk_sum[threadIdx.x] = s;
  if (threadIdx.x == 0) chosen = argmax;  // fallback if rounding leaves the target uncovered
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int i = 0; i < blockDim.x; i++) total += chunk_sum[i];
    const float target = uniform_from_seed(seeds[blockIdx.x]) * total;
    float before = 0.0f;
    int owner = -1;
    for (int i = 0; i < blockDim.x; i++) {
      if (chunk_sum[i] > 0.0f && before + chunk_sum[i] > target) {
        owner = i;
        break;
      }
      before += chunk_sum[i];
    }
    if (owner >= 0) {
      // Walk the owner's chunk (one thread: at most V / 256 elements).
      const int a = owner * chunk, e = min(V, a + chunk);
      int last = -1;
      for (int j = a; j < e; j++) {
        const float z = row[j] * inv_temp, w = __expf(z - zmax);
        if (!(order_key(z) >= k_floor && w >= w_floor)) continue;
        last = j;
        before += w;
        if (before > target) break;
      }
      if (last >= 0) chosen = last;
    }
    ids[blockIdx.x] = chosen;
  }
}

}  // namespace

extern "C" int anvil_cuda_sample(int32_t* ids, const float* logits, const uint32_t* seeds, int B, int V, float temperature, int topK,
                                 float topP, float minP, int greedy, char* err, size_t errlen) {
  REQUIRE(V >= 1, "vocabulary size must be >= 1, got %d", V);
  REQUIRE(topK >= 0, "topK must be >= 0, got %d", topK);
  REQUIRE(topP > 0.0f && topP <= 1.0f, "topP must be in (0, 1], got %g", topP);
  REQUIRE(minP >= 0.0f && minP <= 1.0f, "minP must be in [0, 1], got %g", minP);
  if (B <= 0) return 0;
  // Seeds come from the host: stage them in the workspace (the copy is ordered before the kernel).
  void* ws;
  CUDA_TRY(anvil_cuda::workspace((size_t)B * sizeof(uint32_t), &ws));
  CUDA_TRY(cudaMemcpyAsync(ws, seeds, (size_t)B * sizeof(uint32_t), cudaMemcpyHostToDevice, 0));
  sample_kernel<<<B, kThreads>>>(ids, logits, static_cast<const uint32_t*>(ws), V, temperature, topK, topP, minP, greedy != 0);
  CHECK_LAUNCH();
  return 0;
}
