// grpo_loss.cpp's token loop on 16 AVX-512 lanes (grpo_lanes there, op for op: the same
// formulas in the same float lanes, and e^x by the same Cephes reduction and polynomial as
// simd::exp with the 2^n by vscalefps, so each token's gradients are the AVX2 path's bit for bit;
// only the stats' float partial sums group tokens differently).
//
// One binary for every x86-64 CPU: the shared headers come first, without AVX-512, and this
// file's own functions carry the target attribute; grpo_rows_avx512() hands them out only when
// the CPU runs AVX-512F (grpo_loss.cpp takes them when the softmax kernels' ISA is avx512).
#include <algorithm>

#include "grpo_rows.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__AVX2__) && !defined(ANVIL_NO_AVX512)
#define ANVIL_GRPO_AVX512 1
#endif

#ifdef ANVIL_GRPO_AVX512
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "grpo_rows_loop.h"  // here: its loop is compiled for AVX-512 with lanes16

namespace anvil::cpu {
namespace {

constexpr int64_t kRun = 256;  // tokens per float partial sum (16 per lane)

// simd::exp on 16 lanes: below -87.34 exactly 0, above 88.72 +inf, NaN propagates.
inline __m512 exp16(__m512 x) {
  const __m512 hi = _mm512_set1_ps(88.7228391f), lo = _mm512_set1_ps(-87.3365479f);
  const __mmask16 over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ), under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512 y = _mm512_scalef_ps(p, n);
  y = _mm512_mask_mov_ps(y, over, _mm512_set1_ps(__builtin_inff()));
  y = _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
  return _mm512_mask_mov_ps(y, nan, x);
}

// e^x - 1 - x and e^x - 1 (grpo_loss.cpp's expm1_parts).
inline void expm1_parts16(__m512 x, __m512* k3, __m512* em1) {
  const __mmask16 big = _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
  __m512 p = _mm512_set1_ps(1.0f / 40320);
  for (const float c : {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f}) p = _mm512_fmadd_ps(p, x, _mm512_set1_ps(c));
  const __m512 series = _mm512_mul_ps(p, _mm512_mul_ps(x, x));
  const __m512 e1 = _mm512_sub_ps(exp16(x), _mm512_set1_ps(1.0f));
  *k3 = _mm512_mask_mov_ps(series, big, _mm512_sub_ps(e1, x));
  *em1 = _mm512_mask_mov_ps(_mm512_add_ps(x, series), big, e1);
}

struct Sums16 {
  static constexpr int kSums = 8;  // loss, pg_loss, kl, ent, clip_low, clip_high, dual, r_sum
  __m512 run[kSums];
  __m512d acc[kSums][2];
  __m512 r_min = _mm512_set1_ps(__builtin_inff()), r_max = _mm512_set1_ps(-__builtin_inff());
  Sums16() {
    for (auto& a : acc) a[0] = a[1] = _mm512_setzero_pd();
    for (auto& r : run) r = _mm512_setzero_ps();
  }
  void add(int k, __m512 v) { run[k] = _mm512_add_ps(run[k], v); }
  void fold() {
    for (int k = 0; k < kSums; k++) {
      acc[k][0] = _mm512_add_pd(acc[k][0], _mm512_cvtps_pd(_mm512_castps512_ps256(run[k])));
      acc[k][1] = _mm512_add_pd(acc[k][1], _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(run[k]), 1))));
      run[k] = _mm512_setzero_ps();
    }
  }
  GrpoStatsSum total() const {
    double s[kSums];
    for (int k = 0; k < kSums; k++) s[k] = _mm512_reduce_add_pd(_mm512_add_pd(acc[k][0], acc[k][1]));
    GrpoStatsSum g;
    g.loss = s[0], g.pg_loss = s[1], g.kl = s[2], g.ent = s[3];
    g.clip_low = s[4], g.clip_high = s[5], g.dual = s[6], g.r_sum = s[7];
    const float lo = _mm512_reduce_min_ps(r_min), hi = _mm512_reduce_max_ps(r_max);
    if (lo <= hi) g.r_min = lo, g.r_max = hi;  // else no token with m > 0
    return g;
  }
};

// Sixteen tokens of one sequence: grpo_lanes of grpo_loss.cpp.
inline void lanes16(float* dlp_out, float* dent_out, Sums16& sum, const GrpoOptions& o, const float* lp_in, const float* old_in,
                    const float* ref_in, const float* roll_in, const float* h_in, const float* m_in, float A_s, float inv) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512 lp = _mm512_loadu_ps(lp_in), old = _mm512_loadu_ps(old_in), m = _mm512_loadu_ps(m_in);
  const __m512 h = h_in ? _mm512_loadu_ps(h_in) : zero;
  const __m512 A = _mm512_set1_ps(A_s), wt = _mm512_mul_ps(m, _mm512_set1_ps(inv));
  const __m512 r = exp16(_mm512_sub_ps(lp, old));
  const __m512 lo = _mm512_set1_ps(static_cast<float>(1.0 - o.eps_low)), hi = _mm512_set1_ps(static_cast<float>(1.0 + o.eps_high));
  const __m512 c = _mm512_set1_ps(static_cast<float>(o.dual_clip));
  const __mmask16 low = A_s < 0 ? _mm512_cmp_ps_mask(r, lo, _CMP_LT_OQ) : 0;
  const __mmask16 high = A_s > 0 ? _mm512_cmp_ps_mask(r, hi, _CMP_GT_OQ) : 0;
  const __mmask16 dual = (o.dual_clip > 1 && A_s < 0) ? static_cast<__mmask16>(~low & _mm512_cmp_ps_mask(r, c, _CMP_GT_OQ)) : 0;
  const __mmask16 clipped = low | high;
  const __m512 rA = _mm512_mul_ps(r, A);
  __m512 pg = _mm512_mask_mov_ps(rA, clipped, _mm512_mul_ps(_mm512_min_ps(_mm512_max_ps(r, lo), hi), A));
  pg = _mm512_mask_mov_ps(pg, dual, _mm512_mul_ps(c, A));
  const __m512 dpg = _mm512_maskz_mov_ps(static_cast<__mmask16>(~(clipped | dual)), rA);
  __m512 w = one;
  if (o.tis_cap > 0) w = _mm512_min_ps(exp16(_mm512_sub_ps(old, _mm512_loadu_ps(roll_in))), _mm512_set1_ps(static_cast<float>(o.tis_cap)));
  const __m512 tok_pg = _mm512_sub_ps(zero, _mm512_mul_ps(w, pg));
  __m512 kl = zero, dkl = zero;
  if (ref_in) {
    const __m512 d = _mm512_sub_ps(lp, _mm512_loadu_ps(ref_in));
    switch (o.kl) {
      case KlEstimator::k1: kl = d, dkl = one; break;
      case KlEstimator::k2: kl = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_mul_ps(d, d)), dkl = d; break;
      case KlEstimator::k3: {
        __m512 em1;
        expm1_parts16(_mm512_sub_ps(zero, d), &kl, &em1);
        dkl = _mm512_sub_ps(zero, em1);
        break;
      }
    }
  }
  const __m512 beta = _mm512_set1_ps(static_cast<float>(o.beta)), ecoef = _mm512_set1_ps(static_cast<float>(o.entropy_coef));
  const __m512 tok = _mm512_fnmadd_ps(ecoef, h, _mm512_fmadd_ps(beta, kl, tok_pg));
  const __m512 dlogprob = _mm512_fmadd_ps(beta, dkl, _mm512_sub_ps(zero, _mm512_mul_ps(w, dpg)));
  const __mmask16 in = _mm512_cmp_ps_mask(m, zero, _CMP_NEQ_UQ);
  _mm512_storeu_ps(dlp_out, _mm512_maskz_mov_ps(in, _mm512_mul_ps(wt, dlogprob)));
  _mm512_storeu_ps(dent_out, _mm512_maskz_mov_ps(in, _mm512_mul_ps(wt, _mm512_sub_ps(zero, ecoef))));
  sum.add(0, _mm512_maskz_mov_ps(in, _mm512_mul_ps(wt, tok)));
  sum.add(1, _mm512_maskz_mov_ps(in, _mm512_mul_ps(wt, tok_pg)));
  sum.add(2, _mm512_maskz_mov_ps(in, _mm512_mul_ps(m, kl)));
  sum.add(3, _mm512_maskz_mov_ps(in, _mm512_mul_ps(m, h)));
  sum.add(4, _mm512_maskz_mov_ps(low, m));
  sum.add(5, _mm512_maskz_mov_ps(high, m));
  sum.add(6, _mm512_maskz_mov_ps(dual, m));
  sum.add(7, _mm512_maskz_mov_ps(in, _mm512_mul_ps(m, r)));
  const __mmask16 pos = _mm512_cmp_ps_mask(m, zero, _CMP_GT_OQ);
  sum.r_min = _mm512_mask_min_ps(sum.r_min, pos, sum.r_min, r);
  sum.r_max = _mm512_mask_max_ps(sum.r_max, pos, sum.r_max, r);
}

GrpoStatsSum rows_avx512(const GrpoRows& x, const GrpoWeights& weights, const GrpoOptions& o, int64_t b0, int64_t b1) {
  return grpo_rows_loop<16, Sums16>(x, weights, o, b0, b1, kRun, [](auto&&... a) { lanes16(a...); });
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
GrpoRowsFn grpo_rows_avx512() {
  static const bool usable = __builtin_cpu_supports("avx512f");
  return usable ? rows_avx512 : nullptr;
}
}  // namespace anvil::cpu

#else

namespace anvil::cpu {
GrpoRowsFn grpo_rows_avx512() { return nullptr; }
}  // namespace anvil::cpu

#endif
