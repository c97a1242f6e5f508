// Rotary position embedding (rotate-half layout, as transformers' Llama / Qwen3):
//   out = x * cos + rotate_half(x) * sin,  rotate_half(x) = (-x2, x1)
// Angles are formed in double: pos * inv_freq loses precision in float32 at long positions
// (pos ~ 1e4..1e5), and the rotation is the only thing the model learns positions from.
// Backward is the transpose of a rotation, i.e. the rotation by -angle.
#include "anvil/rope.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace anvil {

namespace {

// sign = +1 forward, -1 backward (inverse rotation).
void rope_apply(float* out, const float* inp, const int32_t* pos, int64_t N, int64_t nh, int64_t hd, double theta,
                float sign) {
  if (hd % 2 != 0) throw std::invalid_argument("rope: head dim must be even");
  const int64_t half = hd / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));

#pragma omp parallel
  {
    std::vector<float> cs(half), sn(half);  // per-token tables, shared by its nh heads
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const double p = static_cast<double>(pos[n]);
      for (int64_t i = 0; i < half; ++i) {
        const double a = p * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(a));
        sn[i] = sign * static_cast<float>(std::sin(a));
      }
      for (int64_t h = 0; h < nh; ++h) {
        const float* x = inp + (n * nh + h) * hd;
        float* y = out + (n * nh + h) * hd;
        // Read both halves before writing so that out may alias inp.
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = x[i], x2 = x[i + half];
          y[i] = x1 * cs[i] - x2 * sn[i];
          y[i + half] = x2 * cs[i] + x1 * sn[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(float* out, const float* inp, const int32_t* pos, int64_t N, int64_t nh, int64_t hd, double theta) {
  rope_apply(out, inp, pos, N, nh, hd, theta, 1.0f);
}

void rope_backward(float* dinp, const float* dout, const int32_t* pos, int64_t N, int64_t nh, int64_t hd, double theta) {
  rope_apply(dinp, dout, pos, N, nh, hd, theta, -1.0f);
}

}  // namespace anvil
