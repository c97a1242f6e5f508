// Fused sampler: ids[b] ~ softmax(logits[b] / temperature) truncated by top-k, top-p and
// min-p, without sorting the vocabulary. One block per row. Semantics are those of
// native/include/anvil/sample.h (the CPU sampler), including the random stream, so a seed picks
// the same token on both backends (up to float rounding at a bucket edge):
//   q_j = exp(z_j - max z), z = logits / temperature
//   top-k: keep q >= the k-th largest q (ties kept); top-p: over the top-k survivors, keep
//   q >= the largest t whose {q >= t} mass reaches topP of theirs (ties kept); min-p: q >= minP.
//   Draw: u = splitmix64(seed) in [0, 1) (53 bits), the first kept index (vocabulary order)
//   whose cumulative q exceeds u * kept mass. greedy or temperature <= 0: first argmax.
// Thresholds come from bisection instead of selection: q >= 0, so its float bits order like
// the values, and 32 counting passes over the row fix the threshold's bits from the top down,
// ending exactly on the k-th largest q (or the top-p boundary value).
// A row with NaN or +inf, or all -inf, gets token 0 and raises BAD_LOGITS (reported by sync),
// where the CPU sampler throws.
#include <cmath>
#include "common.cuh"

namespace {

constexpr int kThreads = 256;
constexpr float kExpFloor = -104.0f;  // as the CPU: exp of it is 0 in float

__device__ __forceinline__ float tempered_q(float x, float inv_temp, float zmax) { return expf(fmaxf(x * inv_temp - zmax, kExpFloor)); }

// SplitMix64 of the seed, top 53 bits as a double in [0, 1): anvil::cpu::sample_uniform.
__device__ __forceinline__ double uniform_from_seed(uint32_t seed) {
  uint64_t z = static_cast<uint64_t>(seed) + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// Largest t (as float bits) such that sum over {j : q_j >= t, q_j >= floor} of weight(q_j) >= need,
// weight = 1 (count, for top-k) or q (mass, for top-p).
__device__ float threshold(const float* row, int V, float inv_temp, float zmax, float floor, bool by_mass, double need, double* scratch) {
  uint32_t bits = 0;
  for (int bit = 30; bit >= 0; bit--) {  // bit 31 (sign) is 0 for every q >= 0
    const float cand = __uint_as_float(bits | (1u << bit));
    double acc = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float q = tempered_q(row[j], inv_temp, zmax);
      if (q >= cand && q >= floor) acc += by_mass ? q : 1.0;
    }
    acc = anvil_cuda::block_sum(acc, scratch);
    if (acc >= need) bits |= 1u << bit;
  }
  return __uint_as_float(bits);
}

// logits (B, V), seeds (B) -> ids (B)
__global__ void __launch_bounds__(kThreads) sample_kernel(int32_t* ids, const float* logits, const uint32_t* seeds, int V, float temperature,
                                                          int top_k, float top_p, float min_p, bool greedy, unsigned int* flags) {
  __shared__ float fscratch[32];
  __shared__ double scratch[32];
  __shared__ double chunk_mass[kThreads];
  __shared__ int chunk_last[kThreads];
  const float* row = logits + (int64_t)blockIdx.x * V;

  // First index of the maximum, and the row checks (NaN, +inf, all -inf).
  float best = -INFINITY;
  int best_j = V, bad = 0;
  for (int j = threadIdx.x; j < V; j += blockDim.x) {
    const float x = row[j];
    if (x != x || x == INFINITY) bad = 1;
    if (x > best) best = x, best_j = j;  // ascending j per thread: first max of the thread
  }
  const float row_max = anvil_cuda::block_max(best, fscratch);
  bad = anvil_cuda::block_max((float)bad, fscratch) > 0.0f || row_max == -INFINITY;
  if (bad) {
    if (threadIdx.x == 0) {
      ids[blockIdx.x] = 0;
      atomicOr(flags, anvil_cuda::BAD_LOGITS);
    }
    return;
  }
  const float first = -anvil_cuda::block_max(best == row_max ? -(float)best_j : -(float)V, fscratch);
  const int argmax = static_cast<int>(first);  // exact: indices < 2^24
  if (greedy || !(temperature > 0.0f)) {
    if (threadIdx.x == 0) ids[blockIdx.x] = argmax;
    return;
  }

  const float inv_temp = 1.0f / temperature;
  const float zmax = row_max * inv_temp;
  float floor = 0.0f;  // keep q >= floor
  if (top_k > 0 && top_k < V) floor = threshold(row, V, inv_temp, zmax, 0.0f, false, (double)top_k, scratch);
  if (top_p < 1.0f) {
    double mass = 0.0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float q = tempered_q(row[j], inv_temp, zmax);
      if (q >= floor) mass += q;
    }
    mass = anvil_cuda::block_sum(mass, scratch);
    floor = fmaxf(floor, threshold(row, V, inv_temp, zmax, floor, true, (double)top_p * mass, scratch));
  }
  if (min_p > 0.0f) floor = fmaxf(floor, min_p);

  // Each thread owns a contiguous chunk of the vocabulary: the chunk masses locate the chunk
  // holding the target, and one thread walks it in index order.
  const int chunk = (V + blockDim.x - 1) / blockDim.x;
  const int j0 = threadIdx.x * chunk, j1 = min(V, j0 + chunk);
  double s = 0.0;
  int last_kept = -1;
  for (int j = j0; j < j1; j++) {
    const float q = tempered_q(row[j], inv_temp, zmax);
    if (q >= floor && q > 0.0f) {
      s += q;
      last_kept = j;
    }
  }
  chunk_mass[threadIdx.x] = s;
  chunk_last[threadIdx.x] = last_kept;
  __syncthreads();
  if (threadIdx.x != 0) return;
  double total = 0.0;
  for (int i = 0; i < blockDim.x; i++) total += chunk_mass[i];
  const double target = uniform_from_seed(seeds[blockIdx.x]) * total;
  double cum = 0.0;
  int last = argmax;  // rounding fallback: the last kept token (the argmax is always kept)
  for (int i = 0; i < blockDim.x; i++) {
    if (chunk_mass[i] == 0.0) continue;
    if (cum + chunk_mass[i] <= target) {  // the whole chunk lies below the target
      cum += chunk_mass[i];
      last = chunk_last[i];
      continue;
    }
    for (int j = i * chunk, e = min(V, j + chunk); j < e; j++) {
      const float q = tempered_q(row[j], inv_temp, zmax);
      if (!(q >= floor && q > 0.0f)) continue;
      last = j;
      cum += q;
      if (cum > target) break;
    }
    break;
  }
  ids[blockIdx.x] = last;
}

}  // namespace

extern "C" int anvil_cuda_sample(int32_t* ids, const float* logits, const uint32_t* seeds, int B, int V, float temperature, int topK,
                                 float topP, float minP, int greedy, char* err, size_t errlen) {
  REQUIRE(V >= 1 && V < (1 << 24), "vocabulary size must be in [1, 2^24), got %d", V);
  REQUIRE(topK >= 0, "topK must be >= 0, got %d", topK);
  REQUIRE(topP > 0.0f && topP <= 1.0f, "topP must be in (0, 1], got %g", topP);
  REQUIRE(minP >= 0.0f && minP <= 1.0f, "minP must be in [0, 1], got %g", minP);
  if (B <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  // Seeds come from the host: stage them in the workspace (the copy is ordered before the kernel).
  void* ws;
  CUDA_TRY(anvil_cuda::workspace((size_t)B * sizeof(uint32_t), &ws));
  CUDA_TRY(cudaMemcpyAsync(ws, seeds, (size_t)B * sizeof(uint32_t), cudaMemcpyHostToDevice, 0));
  sample_kernel<<<B, kThreads>>>(ids, logits, static_cast<const uint32_t*>(ws), V, temperature, topK, topP, minP, greedy != 0, flags);
  CHECK_LAUNCH();
  return 0;
}
