// Bias add (row broadcast) and its backward (column sums).
#include "anvil/bias.h"

#include <algorithm>

namespace anvil::cpu {

// out (N, C) += bias (C)
void bias_add(float* out, const float* bias, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
  for (int64_t n = 0; n < N; n++) {
    float* row = out + n * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) row[c] += bias[c];
  }
}

// dout (N, C) -> dbias (C) +=
// Threads own column blocks (no reduction races, deterministic); each block sums all rows
// into a small double buffer that stays in L1 while dout streams past.
void bias_backward(float* dbias, const float* dout, int64_t N, int64_t C) {
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t c0 = b * kBlock, w = std::min(kBlock, C - c0);
    double acc[kBlock] = {};
    for (int64_t n = 0; n < N; n++) {
      const float* row = dout + n * C + c0;
#pragma omp simd
      for (int64_t c = 0; c < w; c++) acc[c] += row[c];
    }
    for (int64_t c = 0; c < w; c++) dbias[c0 + c] += static_cast<float>(acc[c]);
  }
}

}  // namespace anvil::cpu
