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
  bool nan = false;
  const float mx = softmax_kernels().max(x, n, &nan);
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
