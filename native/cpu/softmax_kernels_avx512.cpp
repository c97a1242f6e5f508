// The "avx512" softmax kernels (softmax_kernels.h): 16 lanes, exp computed as 2^(x log2 e) with
// log2 e folded into the caller's scale (Cephes' exp2f polynomial, the 2^n by vscalefps), masked
// tails instead of scalar ones, and compaction by vcompressps into a register (the memory form
// is microcoded and slow on Zen 4).
//
// One binary for every x86-64 CPU: this file's functions carry their own target attribute and
// softmax_kernels_avx512() hands them out only when the CPU (and OS) runs AVX-512F.
#include "softmax_kernels.h"

#include <algorithm>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__AVX2__) && !defined(ANVIL_NO_AVX512)
#define ANVIL_SOFTMAX_AVX512 1
#endif

#ifdef ANVIL_SOFTMAX_AVX512
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12's avx512fintrin.h reads an "undefined" register in _mm512_reduce_add_ps and the maskz
// forms: a header false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace anvil::cpu {
namespace {

constexpr float kLog2e = 1.44269504088896341f, kLn2 = 0.693147180559945309f;

// 2^y for y in [kExpFloor * log2 e, 128): no NaN and no overflow by contract (callers clamp below
// and subtract the max); below -126 (e^-87.34) exactly 0, as simd::exp. Cephes' exp2f: y = n + f,
// |f| <= 1/2, a degree-6 polynomial for 2^f (about 1 ulp), then vscalefps for the 2^n. Working in
// base 2 lets callers fold log2 e into their scale: 4 fewer operations per vector than e^x.
inline __m512 exp2_bounded(__m512 y) {
  const __mmask16 normal = _mm512_cmp_ps_mask(y, _mm512_set1_ps(-126.0f), _CMP_GE_OQ);
  const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(y, n);
  __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_maskz_scalef_ps(normal, p, n);
}

// The lanes of a 16-wide step with `left` elements still to go (all of them from 16 up).
inline __mmask16 lanes(int64_t left) { return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u); }

// In base 2 (y = d log2 e): t is summed as e^d y and scaled by ln 2 at the end.
void exp_sums_avx512(const float* x, int64_t n, float scale, float m, float* s, float* t) {
  const __m512 vsc = _mm512_set1_ps(scale * kLog2e), vm = _mm512_set1_ps(m * kLog2e), vfloor = _mm512_set1_ps(kExpFloor * kLog2e);
  __m512 s0 = _mm512_setzero_ps(), t0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), t1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    // The caller's next chunk (its max pass reads it next) streams in while this one computes.
    _mm_prefetch(reinterpret_cast<const char*>(x + i + n), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i + n + 16), _MM_HINT_T0);
    const __m512 d0 = _mm512_max_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), vsc, vm), vfloor);
    const __m512 d1 = _mm512_max_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + i + 16), vsc, vm), vfloor);
    const __m512 e0 = exp2_bounded(d0), e1 = exp2_bounded(d1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
    t0 = _mm512_fmadd_ps(e0, d0, t0);
    t1 = _mm512_fmadd_ps(e1, d1, t1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = lanes(n - i);
    const __m512 d = _mm512_max_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, x + i), vsc, vm), vfloor);
    const __m512 e = exp2_bounded(d);
    s0 = _mm512_mask_add_ps(s0, k, s0, e);
    t0 = _mm512_mask3_fmadd_ps(e, d, t0, k);
  }
  *s += _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
  *t += kLn2 * _mm512_reduce_add_ps(_mm512_add_ps(t0, t1));
}

// In base 2 as exp_sums: e = 2^(x scale log2 e - m log2 e), two independent sums.
float exp_store_avx512(float* e, const float* x, int64_t n, float scale, float m) {
  const __m512 vsc = _mm512_set1_ps(scale * kLog2e), vm = _mm512_set1_ps(m * kLog2e), vfloor = _mm512_set1_ps(kExpFloor * kLog2e);
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v0 = exp2_bounded(_mm512_max_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + i), vsc, vm), vfloor));
    const __m512 v1 = exp2_bounded(_mm512_max_ps(_mm512_fmsub_ps(_mm512_loadu_ps(x + i + 16), vsc, vm), vfloor));
    _mm512_storeu_ps(e + i, v0);
    _mm512_storeu_ps(e + i + 16, v1);
    a0 = _mm512_add_ps(a0, v0);
    a1 = _mm512_add_ps(a1, v1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = lanes(n - i);
    const __m512 v = exp2_bounded(_mm512_max_ps(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, x + i), vsc, vm), vfloor));
    _mm512_mask_storeu_ps(e + i, k, v);
    a0 = _mm512_mask_add_ps(a0, k, a0, v);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

int64_t compact_avx512(const float* e, int64_t n, int64_t base, float floor_v, float* val, int32_t* idx, int64_t count) {
  int64_t c = count;
  const __m512 vf = _mm512_set1_ps(floor_v);
  __m512i vi = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(base)),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i step = _mm512_set1_epi32(16);
  for (int64_t i = 0; i < n; i += 16, vi = _mm512_add_epi32(vi, step)) {
    const __mmask16 k = lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(k, e + i);
    const __mmask16 keep = _mm512_mask_cmp_ps_mask(k, v, vf, _CMP_GE_OQ);
    // Branch-free: skipping empty vectors mispredicted more than it saved (measured on Gaussian
    // and Zipf-like rows).
    _mm512_storeu_ps(val + c, _mm512_maskz_compress_ps(keep, v));
    _mm512_storeu_si512(idx + c, _mm512_maskz_compress_epi32(keep, vi));
    c += __builtin_popcount(static_cast<unsigned>(keep));
  }
  return c;
}

void masked_sum_count_avx512(const float* x, int64_t n, float t, double* sum, int64_t* count) {
  constexpr int64_t kBlock = 4096;
  const __m512 vt = _mm512_set1_ps(t);
  double total = 0.0;
  int64_t cnt = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t b1 = std::min(n, b0 + kBlock);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = b0;
    for (; i + 32 <= b1; i += 32) {
      const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
      const __mmask16 k0 = _mm512_cmp_ps_mask(v0, vt, _CMP_GE_OQ), k1 = _mm512_cmp_ps_mask(v1, vt, _CMP_GE_OQ);
      a0 = _mm512_mask_add_ps(a0, k0, a0, v0);
      a1 = _mm512_mask_add_ps(a1, k1, a1, v1);
      cnt += __builtin_popcount(static_cast<unsigned>(k0)) + __builtin_popcount(static_cast<unsigned>(k1));
    }
    for (; i < b1; i += 16) {
      const __mmask16 k = lanes(b1 - i);
      const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
      const __mmask16 keep = _mm512_mask_cmp_ps_mask(k, v, vt, _CMP_GE_OQ);
      a0 = _mm512_mask_add_ps(a0, keep, a0, v);
      cnt += __builtin_popcount(static_cast<unsigned>(keep));
    }
    total += _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  }
  *sum = total;
  *count = cnt;
}

int64_t compact_range_avx512(const float* x, int64_t n, float lo, float hi, float* out) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  int64_t m = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = lanes(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    const __mmask16 keep = _mm512_mask_cmp_ps_mask(_mm512_mask_cmp_ps_mask(k, v, vlo, _CMP_GE_OQ), v, vhi, _CMP_LT_OQ);
    // The whole register is stored: at most out + i + 15, never past what this step has read.
    _mm512_storeu_ps(out + m, _mm512_maskz_compress_ps(keep, v));
    m += __builtin_popcount(static_cast<unsigned>(keep));
  }
  return m;
}

}  // namespace
}  // namespace anvil::cpu

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

namespace anvil::cpu {
const SoftmaxKernels* softmax_kernels_avx512() {
  static const SoftmaxKernels k{"avx512", exp_sums_avx512, exp_store_avx512, compact_avx512, masked_sum_count_avx512, compact_range_avx512};
  // __builtin_cpu_supports also checks that the OS saves zmm state (XCR0).
  static const bool usable = __builtin_cpu_supports("avx512f");
  return usable ? &k : nullptr;
}
}  // namespace anvil::cpu

#else

namespace anvil::cpu {
const SoftmaxKernels* softmax_kernels_avx512() { return nullptr; }
}  // namespace anvil::cpu

#endif
