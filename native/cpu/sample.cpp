// logits (B, V), seeds (B) -> ids (B). Semantics: see anvil/sample.h.
//
// Per row, no sort of V (FlashInfer-style threshold search instead of a sort):
//   1. max (and the NaN / +inf / all -inf checks)
//   2. q = exp(z - max). Only tokens that can still be kept become candidates, compacted in index
//      order as (q, id): tokens with q < eps = (1 - topP) * S_K / |K| hold less than (1 - topP)
//      of the mass together and can never reach the nucleus, and q < minP is out anyway. Without
//      top-k this is one pass (exp, sum and compaction with a floor that grows with the sum).
//   3. top-k (first, on all q): the k-th largest q by bisection on the float bit pattern (exact;
//      branch-free counting passes that shrink to the few elements left in the bracket)
//   4. top-p: the threshold t_p by the same bisection on masked sums over the candidates
//   5. inverse-CDF draw over candidates with q >= threshold: block sums, then one block scanned
// Rows run in parallel; each thread owns its scratch.
#include "anvil/sample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "online_softmax.h"

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

// The one-pass path's chunk (128 KiB: it stays in L2 between the exp and the compaction). Its
// floor uses the mass summed so far, so a chunk of the whole row (V <= 32768) admits exactly the
// tokens the final eps admits; 4,096-float chunks admitted about 40% more on Gaussian rows, work
// the compaction and the bisection then paid for (measured: 5-20% slower overall).
constexpr int64_t kChunk = 32768;

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

struct SumCount {
  double sum = 0.0;
  int64_t count = 0;
};
SumCount masked_sum_count(const SoftmaxKernels& k, const float* x, int64_t n, float t) {
  SumCount r;
  k.masked_sum_count(x, n, t, &r.sum, &r.count);
  return r;
}

// Largest t in [lo0, hi0) with F(t) >= need, F(t) = #{x >= t} (kCount) or sum{x >= t}, given that
// every x is < hi0 and F(lo0) >= need (x below lo0 are ignored). Bisection on the float
// bit pattern (monotone for non-negative floats), so t is exactly one of the x. Passes are
// branch-free masked sums; once the bracket [lo, hi) holds at most half of the working set, those
// elements are compacted into buf (F(hi) is carried as a constant), so each pass touches about
// half the elements of the one before.
template <bool kCount>
float bisect_threshold(const SoftmaxKernels& k, const float* x, int64_t n, double need, float lo0, float hi0,
                       std::vector<float>& buf) {
  // c_lo starts as an upper bound (it only decides when to compact): counting x >= lo0 would
  // cost a pass.
  uint32_t lo = bits(lo0), hi = bits(hi0);
  int64_t c_lo = n, c_hi = 0;  // #{x >= bound}
  double f_hi = 0.0;                   // F(hi)
  const float* w = x;                  // working set: holds every x in [lo, hi)
  int64_t wn = n;
  double above_f = 0.0;                // F contribution of the x >= hi dropped from w
  int64_t above_c = 0;
  buf.resize(std::max<size_t>(buf.size(), static_cast<size_t>(n + 16)));
  while (hi - lo > 1) {
    if (c_lo - c_hi <= wn / 2) {
      wn = k.compact_range(w, wn, from_bits(lo), from_bits(hi), buf.data());  // in place when w is buf
      w = buf.data();
      above_f = f_hi;
      above_c = c_hi;
    }
    const uint32_t mid = lo + (hi - lo) / 2;
    const SumCount sc = masked_sum_count(k, w, wn, from_bits(mid));
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

// Candidates are the tokens that can still be kept, compacted in index order as (q, id) pairs:
// the draw scans them instead of V.
struct Scratch {
  std::vector<float> q;      // every q of the row (paths with top-k or without top-p)
  std::vector<float> val;    // candidate q
  std::vector<int32_t> idx;  // candidate token ids
  std::vector<float> work;   // bisection workspace
  std::vector<double> block_mass;
  float chunk[kChunk];
};

constexpr int64_t kDrawBlock = 256;

// Inverse-CDF draw over val[0..n) with q >= t, in index order: block sums (branch-free), then
// one block scanned. Token id = idx[j], or j itself when idx is null (dense q).
int32_t draw(const SoftmaxKernels& k, const float* val, const int32_t* idx, int64_t n, float t, double u, std::vector<double>& block_mass) {
  const int64_t nblocks = (n + kDrawBlock - 1) / kDrawBlock;
  block_mass.resize(nblocks);
  double total = 0.0;
  for (int64_t b = 0; b < nblocks; b++) {
    const int64_t b0 = b * kDrawBlock;
    total += block_mass[b] = masked_sum_count(k, val + b0, std::min(kDrawBlock, n - b0), t).sum;
  }
  const double target = u * total;
  double cum = 0.0;
  int64_t b = 0;
  for (; b < nblocks - 1; b++) {
    if (block_mass[b] > 0 && cum + block_mass[b] > target) break;
    cum += block_mass[b];
  }
  while (b > 0 && block_mass[b] == 0) b--;  // rounding at the very end: last non-empty block
  const int64_t b0 = b * kDrawBlock, b1 = std::min(n, b0 + kDrawBlock);
  int32_t last = -1;
  for (int64_t j = b0; j < b1; j++) {
    const float v = val[j];
    if (v >= t && v > 0.0f) {
      cum += v;
      last = idx ? idx[j] : static_cast<int32_t>(j);
      if (cum > target) break;
    }
  }
  return last;  // the token where the CDF passes u, or the block's last kept token on rounding
}

int32_t sample_row(const float* x, int64_t V, float inv_t, float m, int64_t top_k, float top_p, float min_p,
                   uint32_t seed, Scratch& sc) {
  const bool use_k = top_k > 0 && top_k < V, use_p = top_p < 1.0f;
  const double u = sample_uniform(seed);
  const SoftmaxKernels& k = softmax_kernels();
  // Every q = e^(z - m) is at most e^(rounding of z - m): a few ulp above 1, since the compiler
  // may fuse z - m into one FMA. Below 2 unless |m| >= 2^22, where anything goes: then +inf. An
  // x >= the bound would be missed by every count (top-k then kept k + 1 tokens); a tight bound
  // saves the bisection's passes over the float range above it.
  const float q_bound = std::fabs(m) < 4194304.0f ? 2.0f : std::numeric_limits<float>::infinity();
  // Tokens with q < eps = (1 - topP) * S_K / |K| hold less than (1 - topP) of the kept mass
  // together, so none of them can be in the nucleus.
  const double eps_per_mass = (1.0 - top_p) * 0.999;
  float threshold = min_p;   // keep q >= threshold (q == 0 is never drawn)
  double kept_mass = 0.0;    // mass of the top-k survivors K (all tokens without top-k)
  int64_t kept_count = V;    // |K|
  int64_t n = 0;             // candidates

  if (!use_p || use_k) {  // dense q first
    float* q = sc.q.data();
    for (int64_t c0 = 0; c0 < V; c0 += kChunk) kept_mass += k.exp_store(q + c0, x + c0, std::min(kChunk, V - c0), inv_t, m);
    if (use_k) {
      const float tk = bisect_threshold<true>(k, q, V, static_cast<double>(top_k), 0.0f, q_bound, sc.work);
      const SumCount kept = masked_sum_count(k, q, V, tk);
      kept_mass = kept.sum;
      kept_count = kept.count;
      threshold = std::max(threshold, tk);
    }
    if (!use_p) return draw(k, q, nullptr, V, threshold, u, sc.block_mass);
    const float eps = static_cast<float>(eps_per_mass * kept_mass / static_cast<double>(kept_count));
    n = k.compact(q, V, 0, std::max(threshold, eps), sc.val.data(), sc.idx.data(), n);
  } else {
    // One pass: exp, sum and compaction. The floor only grows with the running sum, so it never
    // exceeds the final eps: the candidates are a superset of what the bisection needs.
    for (int64_t c0 = 0; c0 < V; c0 += kChunk) {
      const int64_t len = std::min(kChunk, V - c0);
      kept_mass += k.exp_store(sc.chunk, x + c0, len, inv_t, m);
      const float eps = static_cast<float>(eps_per_mass * kept_mass / static_cast<double>(V));
      n = k.compact(sc.chunk, len, c0, std::max(eps, min_p), sc.val.data(), sc.idx.data(), n);
    }
  }
  const double need = static_cast<double>(top_p) * kept_mass;
  const float eps = static_cast<float>(eps_per_mass * kept_mass / static_cast<double>(kept_count));
  // Candidates below eps (admitted early by the one-pass path) are ignored by the bisection;
  // candidates dropped by min-p only matter when t_p < minP, where minP wins anyway.
  const float tp = bisect_threshold<false>(k, sc.val.data(), n, need, eps, q_bound, sc.work);
  return draw(k, sc.val.data(), sc.idx.data(), n, std::max(threshold, tp), u, sc.block_mass);
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
    // Kept per thread across calls (OpenMP's team persists): fresh buffers cost a zero fill and,
    // past malloc's mmap threshold, page faults on every call, more than the sampling itself.
    static thread_local Scratch sc;
    if (!argmax) {
      const bool dense = top_p >= 1.0f || (top_k > 0 && top_k < V);
      const auto grow = [](auto& v, int64_t n) {
        if (v.size() < static_cast<size_t>(n)) v.resize(n);
      };
      if (dense) grow(sc.q, V);
      if (top_p < 1.0f) {
        grow(sc.val, V + 16);
        grow(sc.idx, V + 16);
      }
    }
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
