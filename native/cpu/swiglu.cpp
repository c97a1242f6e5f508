// SwiGLU forward and backward. With s = sigmoid(g):
//   d silu(g) / dg = s * (1 + g * (1 - s))
#include "anvil/swiglu.h"

#include <cmath>

namespace anvil::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 14;
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

// gate (n), up (n) -> out (n)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

// dout, gate, up (n) -> dgate, dup (n)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    const float g = gate[i], s = sigmoid(g), dy = dout[i];
    dgate[i] = dy * up[i] * s * (1.0f + g * (1.0f - s));
    dup[i] = dy * g * s;
  }
}

}  // namespace anvil::cpu
