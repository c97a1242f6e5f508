// SwiGLU forward and backward. With s = sigmoid(g):
//   d silu(g) / dg = s * (1 + g * (1 - s))
// The exp is vectorised (simd_math.h) where AVX2 is available; it is most of the cost.
#include "anvil/swiglu.h"

#include <algorithm>
#include <cmath>

#include "simd_math.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 14;
constexpr int64_t kBlock = 4096;  // elements per OpenMP work item

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// [i0, i1): out = silu(gate) * up
void forward_range(float* out, const float* gate, const float* up, int64_t i0, int64_t i1) {
  int64_t i = i0;
#ifdef ANVIL_SIMD_EXP
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  for (; i + 8 <= i1; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, simd::exp(_mm256_sub_ps(zero, g))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, s), _mm256_loadu_ps(up + i)));
  }
#endif
  for (; i < i1; i++) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

// [i0, i1): dgate = dout * up * s * (1 + g (1 - s)), dup = dout * g * s
void backward_range(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t i0,
                    int64_t i1) {
  int64_t i = i0;
#ifdef ANVIL_SIMD_EXP
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  for (; i + 8 <= i1; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i), dy = _mm256_loadu_ps(dout + i);
    const __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, simd::exp(_mm256_sub_ps(zero, g))));
    const __m256 dsilu = _mm256_mul_ps(s, _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one));
    _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(dy, _mm256_loadu_ps(up + i)), dsilu));
    _mm256_storeu_ps(dup + i, _mm256_mul_ps(dy, _mm256_mul_ps(g, s)));
  }
#endif
  for (; i < i1; i++) {
    const float g = gate[i], s = sigmoid(g), dy = dout[i];
    dgate[i] = dy * up[i] * (s * (1.0f + g * (1.0f - s)));
    dup[i] = dy * (g * s);
  }
}

}  // namespace

// gate (n), up (n) -> out (n)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; b++) forward_range(out, gate, up, b * kBlock, std::min(n, (b + 1) * kBlock));
}

// dout, gate, up (n) -> dgate, dup (n)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; b++)
    backward_range(dgate, dup, dout, gate, up, b * kBlock, std::min(n, (b + 1) * kBlock));
}

}  // namespace anvil::cpu
