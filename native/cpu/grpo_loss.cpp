// logprob, oldLogprob, refLogprob?, rolloutLogprob?, entropy?, mask (B, T), advantages (B)
// -> dlogprob (B, T), dentropy (B, T), stats (11). Semantics: see anvil/grpo_loss.h; the
// per-token math is grpo_token.h, shared with linear_grpo_loss.cpp.
// Two light passes: mask sums per sequence (the aggregation denominators), then one pass over
// 8 tokens at a time (16 with AVX-512: grpo_loss_avx512.cpp) that takes the exponentials (ratio, importance weight, k3's), writes both
// gradients and reduces the loss and stats. The token math is grpo_token.h's, in float lanes
// (the scalar grpo_token, in double, is the fallback without AVX2 and is what
// linear_grpo_loss.cpp runs); the sums are in double. A token's lanes never depend on its
// neighbours (a sequence's tail goes through the same code on a padded vector), so the
// gradients do not depend on the thread count.
#include "anvil/grpo_loss.h"

#include <algorithm>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "grpo_rows.h"
#include "grpo_rows_loop.h"
#include "softmax_kernels.h"

namespace anvil::cpu {

#ifdef ANVIL_SIMD_EXP
namespace {

constexpr int64_t kRun = 256;  // tokens per float partial sum (32 per lane)

// Per-thread sums of the stats: float lanes within a run of at most kRun tokens (a sequence's
// share), folded into double lanes after each run, so the rounding of a sum does not grow with N.
struct LaneSums {
  static constexpr int kSums = 8;  // loss, pg_loss, kl, ent, clip_low, clip_high, dual, r_sum
  __m256 run[kSums];
  __m256d acc[kSums][2];
  __m256 r_min = _mm256_set1_ps(__builtin_inff()), r_max = _mm256_set1_ps(-__builtin_inff());
  LaneSums() {
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_pd();
    for (auto& r : run) r = _mm256_setzero_ps();
  }
  void add(int k, __m256 v) { run[k] = _mm256_add_ps(run[k], v); }
  void fold() {
    for (int k = 0; k < kSums; k++) {
      acc[k][0] = _mm256_add_pd(acc[k][0], _mm256_cvtps_pd(_mm256_castps256_ps128(run[k])));
      acc[k][1] = _mm256_add_pd(acc[k][1], _mm256_cvtps_pd(_mm256_extractf128_ps(run[k], 1)));
      run[k] = _mm256_setzero_ps();
    }
  }
  GrpoStatsSum total() const {
    double s[kSums];
    for (int k = 0; k < kSums; k++) s[k] = simd::hsum(_mm256_add_pd(acc[k][0], acc[k][1]));
    GrpoStatsSum g;
    g.loss = s[0], g.pg_loss = s[1], g.kl = s[2], g.ent = s[3];
    g.clip_low = s[4], g.clip_high = s[5], g.dual = s[6], g.r_sum = s[7];
    const float lo = -simd::hmax(_mm256_sub_ps(_mm256_setzero_ps(), r_min)), hi = simd::hmax(r_max);
    if (lo <= hi) g.r_min = lo, g.r_max = hi;  // else no token with m > 0
    return g;
  }
};

// e^x - 1 - x and e^x - 1 without the cancellation of e^x - 1 near 0: a Taylor series for
// |x| < 1/2 (the next term is under 1e-9 of the value), e^x beyond.
inline void expm1_parts(__m256 x, __m256* k3, __m256* em1) {
  const __m256 big = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  __m256 p = _mm256_set1_ps(1.0f / 40320);
  for (const float c : {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f}) p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(c));
  const __m256 series = _mm256_mul_ps(p, _mm256_mul_ps(x, x));
  const __m256 e1 = _mm256_sub_ps(simd::exp(x), _mm256_set1_ps(1.0f));
  *k3 = _mm256_blendv_ps(series, _mm256_sub_ps(e1, x), big);
  *em1 = _mm256_blendv_ps(_mm256_add_ps(x, series), e1, big);
}

// Eight tokens of one sequence (advantage A, aggregation scale inv = 1 / denominator): writes
// dlogprob and dentropy and adds the stats of the lanes with m != 0.
inline void grpo_lanes(float* dlp_out, float* dent_out, LaneSums& sum, const GrpoOptions& o, const float* lp_in,
                       const float* old_in, const float* ref_in, const float* roll_in, const float* h_in,
                       const float* m_in, float A_s, float inv) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 lp = _mm256_loadu_ps(lp_in), old = _mm256_loadu_ps(old_in), m = _mm256_loadu_ps(m_in);
  const __m256 h = h_in ? _mm256_loadu_ps(h_in) : zero;
  const __m256 A = _mm256_set1_ps(A_s), wt = _mm256_mul_ps(m, _mm256_set1_ps(inv));
  const __m256 r = simd::exp(_mm256_sub_ps(lp, old));
  const __m256 lo = _mm256_set1_ps(static_cast<float>(1.0 - o.eps_low)), hi = _mm256_set1_ps(static_cast<float>(1.0 + o.eps_high));
  const __m256 c = _mm256_set1_ps(static_cast<float>(o.dual_clip));
  // the clips (masks of all ones where they bind); A's sign is the same in every lane
  const __m256 low = A_s < 0 ? _mm256_cmp_ps(r, lo, _CMP_LT_OQ) : zero;
  const __m256 high = A_s > 0 ? _mm256_cmp_ps(r, hi, _CMP_GT_OQ) : zero;
  const __m256 dual = (o.dual_clip > 1 && A_s < 0) ? _mm256_andnot_ps(low, _mm256_cmp_ps(r, c, _CMP_GT_OQ)) : zero;
  const __m256 clipped = _mm256_or_ps(low, high), rA = _mm256_mul_ps(r, A);
  __m256 pg = _mm256_blendv_ps(rA, _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(r, lo), hi), A), clipped);
  pg = _mm256_blendv_ps(pg, _mm256_mul_ps(c, A), dual);
  const __m256 dpg = _mm256_andnot_ps(_mm256_or_ps(clipped, dual), rA);
  __m256 w = one;
  if (o.tis_cap > 0) w = _mm256_min_ps(simd::exp(_mm256_sub_ps(old, _mm256_loadu_ps(roll_in))), _mm256_set1_ps(static_cast<float>(o.tis_cap)));
  const __m256 tok_pg = _mm256_sub_ps(zero, _mm256_mul_ps(w, pg));
  __m256 kl = zero, dkl = zero;
  if (ref_in) {
    const __m256 d = _mm256_sub_ps(lp, _mm256_loadu_ps(ref_in));
    switch (o.kl) {
      case KlEstimator::k1: kl = d, dkl = one; break;
      case KlEstimator::k2: kl = _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(d, d)), dkl = d; break;
      case KlEstimator::k3: {  // e^-d + d - 1 and its derivative 1 - e^-d
        __m256 em1;
        expm1_parts(_mm256_sub_ps(zero, d), &kl, &em1);
        dkl = _mm256_sub_ps(zero, em1);
        break;
      }
    }
  }
  const __m256 beta = _mm256_set1_ps(static_cast<float>(o.beta)), ecoef = _mm256_set1_ps(static_cast<float>(o.entropy_coef));
  const __m256 tok = _mm256_fnmadd_ps(ecoef, h, _mm256_fmadd_ps(beta, kl, tok_pg));
  const __m256 dlogprob = _mm256_fmadd_ps(beta, dkl, _mm256_sub_ps(zero, _mm256_mul_ps(w, dpg)));
  const __m256 in = _mm256_cmp_ps(m, zero, _CMP_NEQ_UQ);  // lanes in the loss (skipped ones give 0, NaN or not)
  _mm256_storeu_ps(dlp_out, _mm256_and_ps(in, _mm256_mul_ps(wt, dlogprob)));
  _mm256_storeu_ps(dent_out, _mm256_and_ps(in, _mm256_mul_ps(wt, _mm256_sub_ps(zero, ecoef))));
  const auto masked = [&](__m256 v) { return _mm256_and_ps(in, v); };
  sum.add(0, masked(_mm256_mul_ps(wt, tok)));
  sum.add(1, masked(_mm256_mul_ps(wt, tok_pg)));
  sum.add(2, masked(_mm256_mul_ps(m, kl)));
  sum.add(3, masked(_mm256_mul_ps(m, h)));
  sum.add(4, _mm256_and_ps(low, m));
  sum.add(5, _mm256_and_ps(high, m));
  sum.add(6, _mm256_and_ps(dual, m));
  sum.add(7, masked(_mm256_mul_ps(m, r)));
  const __m256 pos = _mm256_cmp_ps(m, zero, _CMP_GT_OQ);
  sum.r_min = _mm256_min_ps(sum.r_min, _mm256_blendv_ps(_mm256_set1_ps(__builtin_inff()), r, pos));
  sum.r_max = _mm256_max_ps(sum.r_max, _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), r, pos));
}

// Sequences [b0, b1) on 8 lanes.
GrpoStatsSum rows_avx2(const GrpoRows& x, const GrpoWeights& weights, const GrpoOptions& o, int64_t b0, int64_t b1) {
  return grpo_rows_loop<8, LaneSums>(x, weights, o, b0, b1, kRun, [](auto&&... a) { grpo_lanes(a...); });
}

}  // namespace
#endif

void grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* old_logprob,
               const float* ref_logprob, const float* rollout_logprob, const float* entropy, const float* advantages,
               const float* mask, const GrpoOptions& o) {
  check_grpo_options(o, ref_logprob, rollout_logprob, entropy);
  const int64_t B = o.B, T = o.T, N = B * T;
  const GrpoWeights weights(mask, o);

  // Small batches are cheaper on one thread than waking the team. One partial sum per thread,
  // merged in thread order: the same stats from run to run.
  int nthreads = 1;
#ifdef _OPENMP
  if (N >= 32768) nthreads = omp_get_max_threads();
#endif
  std::vector<GrpoStatsSum> partial(nthreads);
#ifdef ANVIL_SIMD_EXP
  // 16 lanes where the softmax kernels run AVX-512 (ANVIL_SIMD picks both), else 8. Thread t
  // takes a fixed range of sequences: the stats' sums do not depend on the schedule.
  const GrpoRows x{dlogprob, dentropy, logprob, old_logprob, ref_logprob, rollout_logprob, entropy, mask, advantages};
  const GrpoRowsFn wide = grpo_rows_avx512();
  const GrpoRowsFn rows = wide && std::string(softmax_kernels().name) == "avx512" ? wide : rows_avx2;
#pragma omp parallel num_threads(nthreads)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
#else
    const int t = 0, team = 1;
#endif
    partial[t] = rows(x, weights, o, B * t / team, B * (t + 1) / team);
  }
#else
  // the ratio exp(lp - old) and the importance weight exp(old - rollout)
  std::vector<float> ratio(N), e_tis(o.tis_cap > 0 ? N : 0);
  exp_diff(ratio.data(), logprob, old_logprob, N);
  if (!e_tis.empty()) exp_diff(e_tis.data(), old_logprob, rollout_logprob, N);
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t b = 0; b < B; b++) {
#ifdef _OPENMP
    GrpoStatsSum& sum = partial[omp_get_thread_num()];
#else
    GrpoStatsSum& sum = partial[0];
#endif
    const double denom = weights.denominator(b);
    for (int64_t t = 0; t < T; t++) {
      const int64_t i = b * T + t;
      const double m = mask[i];
      if (m == 0.0 || denom == 0.0) {
        dlogprob[i] = 0.0f;
        dentropy[i] = 0.0f;
        continue;
      }
      const double wt = m / denom, h = entropy ? entropy[i] : 0.0;
      const GrpoToken g = grpo_token(o, advantages[b], logprob[i], ratio[i], e_tis.empty() ? 0.0f : e_tis[i],
                                     ref_logprob ? ref_logprob + i : nullptr, h);
      dlogprob[i] = static_cast<float>(wt * g.dlogprob);
      dentropy[i] = static_cast<float>(wt * g.dentropy);
      sum.add(g, m, wt, ratio[i], h);
    }
  }
#endif
  for (int k = 1; k < nthreads; k++) partial[0].merge(partial[k]);
  partial[0].write(stats, weights.total_mass());
}

}  // namespace anvil::cpu
