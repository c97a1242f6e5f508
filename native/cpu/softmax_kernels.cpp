// The "avx2" softmax kernels (portable C++ when built without AVX2) and the run-time choice between
// them and the AVX-512 ones (softmax_kernels.h).
#include "softmax_kernels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "simd_math.h"

namespace anvil::cpu {

namespace {

void exp_sums_avx2(const float* x, int64_t n, float scale, float m, float* s, float* t) {
  float cs = 0.0f, ct = 0.0f;
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vsc = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m), vfloor = _mm256_set1_ps(kExpFloor);
  __m256 s0 = _mm256_setzero_ps(), t0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    __m256 d0 = _mm256_max_ps(_mm256_fmsub_ps(_mm256_loadu_ps(x + i), vsc, vm), vfloor);
    __m256 d1 = _mm256_max_ps(_mm256_fmsub_ps(_mm256_loadu_ps(x + i + 8), vsc, vm), vfloor);
    __m256 e0 = simd::exp(d0), e1 = simd::exp(d1);
    s0 = _mm256_add_ps(s0, e0);
    s1 = _mm256_add_ps(s1, e1);
    t0 = _mm256_fmadd_ps(e0, d0, t0);
    t1 = _mm256_fmadd_ps(e1, d1, t1);
  }
  cs = simd::hsum(_mm256_add_ps(s0, s1));
  ct = simd::hsum(_mm256_add_ps(t0, t1));
#endif
  for (; i < n; i++) {
    float d = std::max(x[i] * scale - m, kExpFloor);
    float e = std::exp(d);
    cs += e;
    ct += e * d;
  }
  *s += cs;
  *t += ct;
}

float exp_store_avx2(float* e, const float* x, int64_t n, float scale, float m) {
  float cs = 0.0f;
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vt = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m), vfloor = _mm256_set1_ps(kExpFloor);
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    __m256 d = _mm256_max_ps(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vt), vm), vfloor);
    __m256 v = simd::exp(d);
    _mm256_storeu_ps(e + i, v);
    acc = _mm256_add_ps(acc, v);
  }
  cs = simd::hsum(acc);
#endif
  for (; i < n; i++) {
    e[i] = std::exp(std::max(x[i] * scale - m, kExpFloor));
    cs += e[i];
  }
  return cs;
}

#if defined(__AVX2__) && defined(__FMA__)
// Left-pack permutations: for each 8-bit keep mask, the kept lanes first.
struct PackTable {
  alignas(32) int32_t perm[256][8];
  PackTable() {
    for (int m = 0; m < 256; m++) {
      int k = 0;
      for (int l = 0; l < 8; l++)
        if (m & (1 << l)) perm[m][k++] = l;
      for (; k < 8; k++) perm[m][k] = 0;
    }
  }
};
const PackTable kPack;
#endif

int64_t compact_avx2(const float* e, int64_t n, int64_t base, float floor_v, float* val, int32_t* idx, int64_t count) {
  int64_t c = count, i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vf = _mm256_set1_ps(floor_v);
  __m256i vi = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(base)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i step = _mm256_set1_epi32(8);
  for (; i + 8 <= n; i += 8, vi = _mm256_add_epi32(vi, step)) {
    const __m256 v = _mm256_loadu_ps(e + i);
    const int mask = _mm256_movemask_ps(_mm256_cmp_ps(v, vf, _CMP_GE_OQ));
    if (mask == 0) continue;  // the long tail: most blocks keep nothing
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.perm[mask]));
    _mm256_storeu_ps(val + c, _mm256_permutevar8x32_ps(v, perm));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + c), _mm256_permutevar8x32_epi32(vi, perm));
    c += __builtin_popcount(static_cast<unsigned>(mask));
  }
#endif
  for (; i < n; i++) {
    val[c] = e[i];
    idx[c] = static_cast<int32_t>(base + i);
    c += e[i] >= floor_v;
  }
  return c;
}

void masked_sum_count_avx2(const float* x, int64_t n, float t, double* sum, int64_t* count) {
  constexpr int64_t kBlock = 4096;
  double total = 0.0;
  int64_t cnt = 0;
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
    s = simd::hsum(_mm256_add_ps(a0, a1));
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi32(c0, c1));
    for (int32_t l : lanes) cnt += l;
#endif
    for (; i < b1; i++) {
      const bool keep = x[i] >= t;
      s += keep ? x[i] : 0.0f;
      cnt += keep;
    }
    total += s;
  }
  *sum = total;
  *count = cnt;
}

int64_t compact_range_avx2(const float* x, int64_t n, float lo, float hi, float* out) {
  int64_t m = 0;
  for (int64_t i = 0; i < n; i++) {  // branch-free; in place when out == x
    const float v = x[i];
    out[m] = v;
    m += (v >= lo) & (v < hi);
  }
  return m;
}

const SoftmaxKernels kAvx2{"avx2", exp_sums_avx2, exp_store_avx2, compact_avx2, masked_sum_count_avx2, compact_range_avx2};

const SoftmaxKernels* by_name(const std::string& name) {
  if (name == "avx2") return &kAvx2;
  if (name == "avx512") return softmax_kernels_avx512();
  return nullptr;
}

const SoftmaxKernels* initial() {
  const char* env = std::getenv("ANVIL_SIMD");
  if (env && *env && std::string(env) != "auto") {
    if (const SoftmaxKernels* k = by_name(env)) return k;
    // An unusable request falls back to the widest kernels rather than failing every op.
  }
  const SoftmaxKernels* wide = softmax_kernels_avx512();
  return wide ? wide : &kAvx2;
}

std::atomic<const SoftmaxKernels*> selected{nullptr};

}  // namespace

const SoftmaxKernels& softmax_kernels() {
  const SoftmaxKernels* k = selected.load(std::memory_order_relaxed);
  if (!k) {
    k = initial();
    selected.store(k, std::memory_order_relaxed);
  }
  return *k;
}

std::vector<std::string> simd_isas() {
  std::vector<std::string> out{"avx2"};
  if (softmax_kernels_avx512()) out.push_back("avx512");
  return out;
}

void set_simd_isa(const std::string& name) {
  const SoftmaxKernels* k = by_name(name);
  if (!k) {
    std::string known;
    for (const auto& n : simd_isas()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("vector ISA '" + name + "' is not available here (available: " + known + ")");
  }
  selected.store(k, std::memory_order_relaxed);
}

std::string simd_isa_selected() { return softmax_kernels().name; }

}  // namespace anvil::cpu
