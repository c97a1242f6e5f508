// Cross-entropy forward and backward, numerically stable: every exp is of (x - rowmax) <= 0,
// and the log-sum-exp is accumulated in double.
#include "anvil/crossentropy.h"

#include <cmath>

#include "anvil/ids.h"

namespace anvil::cpu {

namespace {

// logits row (V) -> max, and sum(exp(x - max))
inline void row_stats(const float* x, int64_t V, float* max_out, double* sum_out) {
  float mx = -INFINITY;
  for (int64_t v = 0; v < V; v++) mx = x[v] > mx ? x[v] : mx;
  double sum = 0.0;
  for (int64_t v = 0; v < V; v++) sum += std::exp(static_cast<double>(x[v] - mx));
  *max_out = mx;
  *sum_out = sum;
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
    const float scale = static_cast<float>(dloss[n] / sum);
    for (int64_t v = 0; v < V; v++) g[v] = std::exp(x[v] - mx) * scale;
    g[t] -= dloss[n];
  }
}

}  // namespace anvil::cpu
