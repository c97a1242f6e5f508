// logits (B, V), seeds (B) -> ids (B). Semantics: see anvil/sample.h.
//
// Per row, no sort of V (FlashInfer-style threshold search instead of a sort):
//   1. max (and the NaN / +inf / all -inf checks), then q = exp(z - max) into scratch, S = sum q
//   2. top-k: the k-th largest q by bisection on the float bit pattern (exact; branch-free
//      counting passes that shrink to the few elements left in the bracket)
//   3. top-p: tokens with q < eps = (1 - topP) * S_K / |K| can never reach the nucleus (their total
//      mass is below (1 - topP) * S_K); the rest are compacted and the threshold t_p is found by
//      the same bisection on masked sums
//   4. min-p: threshold minP on q
//   5. inverse-CDF draw over q >= threshold in index order: block sums, then one block scanned
// Rows run in parallel; each thread owns its scratch.
#include "anvil/sample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "anvil/online_softmax.h"

namespace anvil::cpu {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

enum RowStatus : int { kOk = 0, kNaN = 1, kPosInf = 2, kAllNegInf = 3 };

// Max of the row plus its status. Exact comparisons, no scaling.
RowStatus row_max(const float* x, int64_t V, float& mx) {
  mx = scaled_max(x, V, 1.0f);
  if (mx != mx) return kNaN;
  if (mx == std::numeric_limits<float>::infinity()) return kPosInf;
  if (mx == -std::numeric_limits<float>::infinity()) return kAllNegInf;
  return kOk;
}

// q[i] = exp(x[i] * inv_t - m); returns sum q. z is rounded exactly as m was, so the max maps to 1.
double tempered_exp(float* q, const float* x, int64_t V, float inv_t, float m) {
  double total = 0.0;
  constexpr int64_t kChunk = 4096;
  for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
    const int64_t c1 = std::min(V, c0 + kChunk);
    float cs = 0.0f;
    int64_t i = c0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vt = _mm256_set1_ps(inv_t), vm = _mm256_set1_ps(m), vfloor = _mm256_set1_ps(kExpFloor);
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= c1; i += 8) {
      __m256 d = _mm256_max_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vt), vm), vfloor);
      __m256 e = exp256(d);
      _mm256_storeu_ps(q + i, e);
      acc = _mm256_add_ps(acc, e);
    }
    cs = hsum256(acc);
#endif
    for (; i < c1; i++) {
      float e = std::exp(std::max(x[i] * inv_t - m, kExpFloor));
      q[i] = e;
      cs += e;
    }
    total += cs;
  }
  return total;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Sum and count of x[i] >= t (x >= 0), branch-free; float lanes per block, double across blocks.
struct SumCount {
  double sum = 0.0;
  int64_t count = 0;
};
SumCount masked_sum_count(const float* x, int64_t n, float t) {
  SumCount r;
  constexpr int64_t kBlock = 4096;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    int64_t i = b0;
    float s = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vt = _mm256_set1_ps(t);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    for (; i + 16 <= b1; i += 16) {
      __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
      __m256 k0 = _mm256_cmp_ps(v0, vt, _CMP_GE_OQ), k1 = _mm256_cmp_ps(v1, vt, _CMP_GE_OQ);
      a0 = _mm256_add_ps(a0, _mm256_and_ps(k0, v0));
      a1 = _mm256_add_ps(a1, _mm256_and_ps(k1, v1));
      c0 = _mm256_sub_epi32(c0, _mm256_castps_si256(k0));  // mask lanes are -1
      c1 = _mm256_sub_epi32(c1, _mm256_castps_si256(k1));
    }
    s = hsum256(_mm256_add_ps(a0, a1));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi32(c0, c1));
    for (int32_t l : lanes) r.count += l;
#endif
    for (; i < b1; i++) {
      const bool keep = x[i] >= t;
      s += keep ? x[i] : 0.0f;
      r.count += keep;
    }
    r.sum += s;
  }
  return r;
}

// Largest t in [lo0, 1] with F(t) >= need, F(t) = #{x >= t} (kCount) or sum{x >= t}, given that
// every x is in [lo0, 1] and F(lo0) >= need. Bisection on the float bit pattern (monotone for
// non-negative floats), so t is exactly one of the x. Passes are branch-free masked sums; once
// the bracket [lo, hi) holds under 1/8 of the working set, those elements are compacted into buf
// (F(hi) is carried as a constant), so later passes touch few elements.
template <bool kCount>
float bisect_threshold(const float* x, int64_t n, double need, float lo0, std::vector<float>& buf) {
  uint32_t lo = bits(lo0), hi = bits(1.0f) + 1;
  int64_t c_lo = n, c_hi = 0;          // #{x >= bound}
  double f_hi = 0.0;                   // F(hi)
  const float* w = x;                  // working set: holds every x in [lo, hi)
  int64_t wn = n;
  double above_f = 0.0;                // F contribution of the x >= hi dropped from w
  int64_t above_c = 0;
  buf.resize(std::max<size_t>(buf.size(), static_cast<size_t>(n)));
  while (hi - lo > 1) {
    if (c_lo - c_hi <= wn / 8) {
      const float tl = from_bits(lo), th = from_bits(hi);
      float* out = buf.data();
      int64_t m = 0;
      for (int64_t i = 0; i < wn; i++) {  // branch-free; in place when w is buf
        const float v = w[i];
        out[m] = v;
        m += (v >= tl) & (v < th);
      }
      w = out;
      wn = m;
      above_f = f_hi;
      above_c = c_hi;
    }
    const uint32_t mid = lo + (hi - lo) / 2;
    const SumCount sc = masked_sum_count(w, wn, from_bits(mid));
    const int64_t c = above_c + sc.count;
    const double f = kCount ? static_cast<double>(c) : above_f + sc.sum;
    if (f >= need) {
      lo = mid;
      c_lo = c;
    } else {
      hi = mid;
      c_hi = c;
      f_hi = f;
    }
  }
  return from_bits(lo);
}

struct Scratch {
  std::vector<float> q, cand;
  std::vector<double> block_mass;
};

constexpr int64_t kDrawBlock = 256;

// Inverse-CDF draw over q >= t in index order: block sums first (branch-free), then a scan of
// the one block that holds the target.
int32_t draw(const float* q, int64_t V, float t, double u, Scratch& sc) {
  const int64_t nblocks = (V + kDrawBlock - 1) / kDrawBlock;
  sc.block_mass.resize(nblocks);
  double total = 0.0;
  for (int64_t b = 0; b < nblocks; b++) {
    const int64_t b0 = b * kDrawBlock;
    total += sc.block_mass[b] = masked_sum_count(q + b0, std::min(kDrawBlock, V - b0), t).sum;
  }
  double target = u * total, cum = 0.0;
  int64_t b = 0;
  for (; b < nblocks - 1; b++) {
    if (sc.block_mass[b] > 0 && cum + sc.block_mass[b] > target) break;
    cum += sc.block_mass[b];
  }
  while (b > 0 && sc.block_mass[b] == 0) b--;  // rounding at the very end: last non-empty block
  const int64_t b0 = b * kDrawBlock, b1 = std::min(V, b0 + kDrawBlock);
  int32_t last = -1;
  for (int64_t i = b0; i < b1; i++) {
    if (q[i] >= t && q[i] > 0.0f) {
      cum += q[i];
      last = static_cast<int32_t>(i);
      if (cum > target) break;
    }
  }
  return last;  // the token where the CDF passes u, or the block's last kept token on rounding
}

int32_t sample_row(const float* x, int64_t V, float inv_t, float m, int64_t top_k, float top_p, float min_p,
                   uint32_t seed, Scratch& sc) {
  float* q = sc.q.data();
  const double total = tempered_exp(q, x, V, inv_t, m);
  float threshold = 0.0f;  // keep q >= threshold (q == 0 is never drawn)
  double kept_mass = total;
  int64_t kept_count = V;

  if (top_k > 0 && top_k < V) {
    threshold = bisect_threshold<true>(q, V, static_cast<double>(top_k), 0.0f, sc.cand);
    const SumCount kept = masked_sum_count(q, V, threshold);
    kept_mass = kept.sum;
    kept_count = kept.count;
  }
  if (top_p < 1.0f) {
    const double need = static_cast<double>(top_p) * kept_mass;
    // Tokens below eps hold less than (1 - topP) of the mass together: never in the nucleus.
    const float eps = static_cast<float>((1.0 - top_p) * kept_mass / static_cast<double>(kept_count) * 0.999);
    const float floor_v = std::max(eps, threshold);
    sc.cand.resize(V);
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++) {  // branch-free compaction
      sc.cand[n] = q[i];
      n += q[i] >= floor_v;
    }
    threshold = std::max(threshold, bisect_threshold<false>(sc.cand.data(), n, need, floor_v, sc.cand));
  }
  if (min_p > 0.0f) threshold = std::max(threshold, min_p);
  return draw(q, V, threshold, sample_uniform(seed), sc);
}

}  // namespace

double sample_uniform(uint32_t seed) { return static_cast<double>(splitmix64(seed) >> 11) * 0x1.0p-53; }

void sample(int32_t* ids, const float* logits, const uint32_t* seeds, int64_t B, int64_t V, float temperature,
            int64_t top_k, float top_p, float min_p, bool greedy) {
  if (V < 1) throw std::invalid_argument("V must be >= 1");
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw std::invalid_argument("topP must be in (0, 1]");
  if (!(min_p >= 0.0f && min_p <= 1.0f)) throw std::invalid_argument("minP must be in [0, 1]");
  if (top_k < 0) throw std::invalid_argument("topK must be >= 0");
  const bool argmax = greedy || !(temperature > 0.0f);
  std::vector<int> status(B, kOk);

#pragma omp parallel if (B > 1)
  {
    Scratch sc;
    if (!argmax) sc.q.resize(V);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < B; b++) {
      const float* x = logits + b * V;
      float mx;
      status[b] = row_max(x, V, mx);
      if (status[b] != kOk) {
        ids[b] = 0;
        continue;
      }
      if (argmax) {
        ids[b] = static_cast<int32_t>(std::find(x, x + V, mx) - x);
        continue;
      }
      const float inv_t = 1.0f / temperature;
      ids[b] = sample_row(x, V, inv_t, mx * inv_t, top_k, top_p, min_p, seeds[b], sc);
    }
  }
  for (int64_t b = 0; b < B; b++) {
    if (status[b] == kOk) continue;
    const char* why = status[b] == kNaN ? "contains NaN" : status[b] == kPosInf ? "contains +inf" : "is all -inf";
    throw std::invalid_argument("logits row " + std::to_string(b) + " " + why + ": cannot sample");
  }
}

}  // namespace anvil::cpu
