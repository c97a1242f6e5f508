// logits (B, V), seeds (B) -> ids (B). Semantics: see anvil/sample.h.
//
// Per row, no sort of V:
//   1. max (and the NaN / +inf / all -inf checks), then q = exp(z - max) into scratch, S = sum q
//   2. top-k: k-th largest q by nth_element (O(V) expected)
//   3. top-p: tokens with q < eps = (1 - topP) * S_K / |K| can never reach the nucleus (their total
//      mass is below (1 - topP) * S_K), so only the rest are candidates; a mass-weighted
//      quickselect (3-way partition, keep the side that holds the threshold) finds t_p exactly
//   4. min-p: threshold minP on q
//   5. inverse-CDF draw over q >= threshold in index order (double accumulation)
// Rows run in parallel; each thread owns its scratch.
#include "anvil/sample.h"

#include <algorithm>
#include <cmath>
#include <functional>
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

// Largest value t among vals[0..n) such that the sum of vals >= t reaches need (need > 0).
// Mass-weighted quickselect; reorders vals.
float mass_threshold(float* vals, int64_t n, double need) {
  int64_t lo = 0, hi = n;
  const float smallest = n > 0 ? *std::min_element(vals, vals + n) : 0.0f;
  while (lo < hi) {
    // median of three as pivot
    float a = vals[lo], b = vals[lo + (hi - lo) / 2], c = vals[hi - 1];
    float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));
    // 3-way partition: [lo, gt) > pivot, [gt, lt) == pivot, [lt, hi) < pivot
    int64_t gt = lo, i = lo, lt = hi;
    while (i < lt) {
      if (vals[i] > pivot) std::swap(vals[i++], vals[gt++]);
      else if (vals[i] < pivot) std::swap(vals[i], vals[--lt]);
      else i++;
    }
    double mass_gt = 0.0;
    for (int64_t j = lo; j < gt; j++) mass_gt += vals[j];
    const double mass_eq = static_cast<double>(pivot) * static_cast<double>(lt - gt);
    if (mass_gt >= need) {
      hi = gt;
    } else if (mass_gt + mass_eq >= need) {
      return pivot;
    } else {
      need -= mass_gt + mass_eq;
      lo = lt;
    }
  }
  // Only reachable through rounding (need slightly above the total): keep every candidate.
  return smallest;
}

struct Scratch {
  std::vector<float> q, cand;
};

int32_t sample_row(const float* x, int64_t V, float inv_t, float m, int64_t top_k, float top_p, float min_p,
                   uint32_t seed, Scratch& sc) {
  float* q = sc.q.data();
  const double total = tempered_exp(q, x, V, inv_t, m);
  float threshold = 0.0f;  // keep q >= threshold (q == 0 is never drawn)
  double kept_mass = total;
  int64_t kept_count = V;

  if (top_k > 0 && top_k < V) {
    sc.cand.assign(q, q + V);
    std::nth_element(sc.cand.begin(), sc.cand.begin() + (top_k - 1), sc.cand.end(), std::greater<float>());
    threshold = sc.cand[top_k - 1];
    kept_mass = 0.0;
    kept_count = 0;
    for (int64_t i = 0; i < V; i++)
      if (q[i] >= threshold) {
        kept_mass += q[i];
        kept_count++;
      }
  }
  if (top_p < 1.0f) {
    const double need = static_cast<double>(top_p) * kept_mass;
    // Tokens below eps hold less than (1 - topP) of the mass together: never in the nucleus.
    const float eps = static_cast<float>((1.0 - top_p) * kept_mass / static_cast<double>(kept_count) * 0.999);
    const float floor_v = std::max(eps, threshold);
    sc.cand.clear();
    for (int64_t i = 0; i < V; i++)
      if (q[i] >= floor_v) sc.cand.push_back(q[i]);
    threshold = std::max(threshold, mass_threshold(sc.cand.data(), static_cast<int64_t>(sc.cand.size()), need));
  }
  if (min_p > 0.0f) threshold = std::max(threshold, min_p);

  double mass = 0.0;
  for (int64_t i = 0; i < V; i++)
    if (q[i] >= threshold) mass += q[i];
  const double target = sample_uniform(seed) * mass;
  double cum = 0.0;
  int32_t last = -1;
  for (int64_t i = 0; i < V; i++) {
    if (q[i] >= threshold && q[i] > 0.0f) {
      cum += q[i];
      last = static_cast<int32_t>(i);
      if (cum > target) return last;
    }
  }
  return last;  // rounding fallback: the last kept token
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

#pragma omp parallel
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
