// RMSNorm forward and backward. rstd is saved by the forward so the backward never
// recomputes the row statistics.
//
// With r = rstd(x) and y_i = x_i * r * w_i:
//   dx_j = r * (dy_j w_j - x_j * r^2 * mean_i(dy_i w_i x_i))
//   dw_i += sum over rows of dy_i * x_i * r
#include "anvil/rmsnorm.h"

#include <algorithm>
#include <cmath>

namespace anvil::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 15;
}

// inp (N, C), weight (C) -> out (N, C), rstd (N)
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kParallelMin)
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    float* y = out + n * C;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t c = 0; c < C; c++) ss += static_cast<double>(x[c]) * x[c];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
    rstd[n] = r;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
  }
}

// dout (N, C), inp, weight (C), rstd (N) -> dinp (N, C), dweight (C) +=
// Two passes keep both parallel and race-free: rows for dinp, then column blocks for dweight.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C) {
  const bool par = N * C >= kParallelMin;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t n = 0; n < N; n++) {
    const float* x = inp + n * C;
    const float* dy = dout + n * C;
    float* dx = dinp + n * C;
    const float r = rstd[n];
    double dot = 0.0;  // sum_i dy_i w_i x_i
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < C; c++) dot += static_cast<double>(dy[c]) * weight[c] * x[c];
    const float k = static_cast<float>(dot / static_cast<double>(C)) * r * r;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) dx[c] = r * (dy[c] * weight[c] - x[c] * k);
  }

  constexpr int64_t kBlock = 256;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t c0 = b * kBlock, w = std::min(kBlock, C - c0);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; n++) {
      const float* x = inp + n * C + c0;
      const float* dy = dout + n * C + c0;
      const float r = rstd[n];
#pragma omp simd
      for (int64_t c = 0; c < w; c++) acc[c] += dy[c] * x[c] * r;
    }
    for (int64_t c = 0; c < w; c++) dweight[c0 + c] += static_cast<float>(acc[c]);
  }
}

}  // namespace anvil::cpu
