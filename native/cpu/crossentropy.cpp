// Cross-entropy forward and backward, numerically stable: every exp is of (x - rowmax) <= 0,
// and the log-sum-exp is accumulated in double. The exps are vectorised (simd_math.h).
#include "anvil/crossentropy.h"

#include <cmath>

#include "anvil/ids.h"
#include "simd_math.h"

namespace anvil::cpu {

namespace {

// logits row (V) -> max, and sum(exp(x - max)) accumulated in double
inline void row_stats(const float* x, int64_t V, float* max_out, double* sum_out) {
  int64_t v = 0;
  float mx = -INFINITY;
  double sum = 0.0;
#ifdef ANVIL_SIMD_EXP
  __m256 m8 = _mm256_set1_ps(-INFINITY);
  for (; v + 8 <= V; v += 8) m8 = _mm256_max_ps(m8, _mm256_loadu_ps(x + v));
  mx = simd::hmax(m8);
  for (int64_t t = v; t < V; t++) mx = x[t] > mx ? x[t] : mx;
  const __m256 vm = _mm256_set1_ps(mx);
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (v = 0; v + 8 <= V; v += 8) {
    const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + v), vm));
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  sum = simd::hsum(_mm256_add_pd(s0, s1));
#else
  for (int64_t t = 0; t < V; t++) mx = x[t] > mx ? x[t] : mx;
#endif
  for (; v < V; v++) sum += std::exp(static_cast<double>(x[v] - mx));
  *max_out = mx;
  *sum_out = sum;
}

// g (V) = exp(x - mx) * scale
inline void scaled_softmax(float* g, const float* x, int64_t V, float mx, float scale) {
  int64_t v = 0;
#ifdef ANVIL_SIMD_EXP
  const __m256 vm = _mm256_set1_ps(mx), vs = _mm256_set1_ps(scale);
  for (; v + 8 <= V; v += 8)
    _mm256_storeu_ps(g + v, _mm256_mul_ps(simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + v), vm)), vs));
#endif
  for (; v < V; v++) g[v] = std::exp(x[v] - mx) * scale;
}

}  // namespace

// logits (N, V), targets (N) -> loss (N)
void cross_entropy_forward(float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V) {
  check_ids(targets, N, V, "targets", "V", /*allow_negative=*/true);
#pragma omp parallel for schedule(static) if (N * V >= (1 << 14))
  for (int64_t n = 0; n < N; n++) {
    const int32_t t = targets[n];
    if (t < 0) {
      loss[n] = 0.0f;
      continue;
    }
    const float* x = logits + n * V;
    float mx;
    double sum;
    row_stats(x, V, &mx, &sum);
    loss[n] = static_cast<float>(std::log(sum) + mx - x[t]);
  }
}

// dloss (N), logits (N, V), targets (N) -> dlogits (N, V)
void cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const int32_t* targets, int64_t N,
                            int64_t V) {
  check_ids(targets, N, V, "targets", "V", /*allow_negative=*/true);
#pragma omp parallel for schedule(static) if (N * V >= (1 << 14))
  for (int64_t n = 0; n < N; n++) {
    const int32_t t = targets[n];
    float* g = dlogits + n * V;
    if (t < 0) {
      for (int64_t v = 0; v < V; v++) g[v] = 0.0f;
      continue;
    }
    const float* x = logits + n * V;
    float mx;
    double sum;
    row_stats(x, V, &mx, &sum);
    scaled_softmax(g, x, V, mx, static_cast<float>(dloss[n] / sum));
    g[t] -= dloss[n];
  }
}

}  // namespace anvil::cpu
