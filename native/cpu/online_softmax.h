// Streaming log-sum-exp and entropy over a row seen in chunks, shared by the fused log-prob
// kernels (logprob_from_logits.cpp, linear_logprob.cpp, sample.cpp). Private to native/cpu;
// header-only; the exp loop itself is one of softmax_kernels.h's, chosen at run time.
//
// After chunks z_1..z_n the state holds
//   m = max z,   s = sum e^(z - m),   t = sum e^(z - m) * (z - m)
// so that lse = m + log s and entropy = lse - sum p z = log s - t / s. Keeping t relative to m
// avoids the cancellation of lse - sum p z when logits are large.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "softmax_kernels.h"
#include "simd_math.h"

namespace anvil::cpu {

struct OnlineSoftmax {
  float m = -std::numeric_limits<float>::infinity();
  double s = 0.0;
  double t = 0.0;

  float lse() const { return m + static_cast<float>(std::log(s)); }
  // Entropy of softmax(z) in nats.
  float entropy() const { return static_cast<float>(std::log(s) - t / s); }
  // Raises the running max to cm, rescaling s and t (t shifts by (m_old - m_new) * s).
  void rebase(float cm) {
    if (!(cm > m)) return;
    if (s > 0) {
      double a = std::exp(static_cast<double>(m) - cm);
      t = a * (t + (static_cast<double>(m) - cm) * s);
      s *= a;
    }
    m = cm;
  }
  // Folds in the state of another part of the same row (e.g. another vocab range).
  void merge(const OnlineSoftmax& o) {
    if (o.s != o.s || s != s) {
      s = t = std::numeric_limits<double>::quiet_NaN();
      return;
    }
    if (!(o.s > 0)) return;
    rebase(o.m);
    const double a = std::exp(static_cast<double>(o.m) - m);
    s += a * o.s;
    t += a * (o.t + (static_cast<double>(o.m) - m) * o.s);
  }
};

// Max of scale * x[0..n) (scale > 0). NaN in x makes the result NaN.
inline float scaled_max(const float* x, int64_t n, float scale) {
  float mx = -std::numeric_limits<float>::infinity();
  bool nan = false;
  int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
  // Four independent maxima: one accumulator is bound by vmaxps' latency (8 floats per 4
  // cycles), four by the loads.
  __m256 m0 = _mm256_set1_ps(mx), m1 = m0, m2 = m0, m3 = m0;
  __m256 n0 = _mm256_setzero_ps(), n1 = _mm256_setzero_ps();
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    m0 = _mm256_max_ps(m0, v0), m1 = _mm256_max_ps(m1, v1), m2 = _mm256_max_ps(m2, v2), m3 = _mm256_max_ps(m3, v3);
    n0 = _mm256_or_ps(n0, _mm256_or_ps(_mm256_cmp_ps(v0, v0, _CMP_UNORD_Q), _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)));
    n1 = _mm256_or_ps(n1, _mm256_or_ps(_mm256_cmp_ps(v2, v2, _CMP_UNORD_Q), _mm256_cmp_ps(v3, v3, _CMP_UNORD_Q)));
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    m0 = _mm256_max_ps(m0, v);
    n0 = _mm256_or_ps(n0, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  mx = simd::hmax(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  nan = _mm256_movemask_ps(_mm256_or_ps(n0, n1)) != 0;
#endif
  for (; i < n; i++) {
    if (x[i] > mx) mx = x[i];
    if (x[i] != x[i]) nan = true;
  }
  if (nan) return std::numeric_limits<float>::quiet_NaN();
  return mx * scale;
}

// Folds the chunk z = scale * x[0..n) into the state. Chunks should be small enough to stay in
// L1 (a few thousand floats): the chunk is read twice (max, then exp).
inline void online_update(OnlineSoftmax& st, const float* x, int64_t n, float scale) {
  float cm = scaled_max(x, n, scale);
  if (cm != cm) {  // NaN poisons the row, as it would in an unfused softmax
    st.m = cm;
    st.s = st.t = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  if (cm == -std::numeric_limits<float>::infinity()) return;  // contributes nothing
  st.rebase(cm);
  float cs = 0.0f, ct = 0.0f;
  softmax_kernels().exp_sums(x, n, scale, st.m, &cs, &ct);
  st.s += cs;
  st.t += ct;
}

}  // namespace anvil::cpu
