// AdamW step, in the same order of float operations as torch's single-tensor AdamW
// (torch/optim/adamw.py), so trajectories match torch to the last bit or two:
//   p *= 1 - lr * wd
//   m = m * beta1 + (1 - beta1) * g
//   v = v * beta2 + (1 - beta2) * g * g
//   p += -(lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Scalars are computed in double (Python floats) and rounded to float when they meet a tensor.
#include "anvil/adamw.h"

#include <cmath>

namespace anvil::cpu {

// param, grad, m, v (n)
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, int64_t step) {
  const double t = static_cast<double>(step);
  const float neg_step_size = static_cast<float>(-(lr / (1.0 - std::pow(beta1, t))));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
  const float decay = static_cast<float>(1.0 - lr * weight_decay);
  const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2);
  const float one_m_b1 = static_cast<float>(1.0 - beta1), one_m_b2 = static_cast<float>(1.0 - beta2);
  const float epsf = static_cast<float>(eps);
#pragma omp parallel for simd schedule(static) if (n >= (1 << 15))
  for (int64_t i = 0; i < n; i++) {
    const float g = grad[i];
    const float p = param[i] * decay;
    const float mi = m[i] * b1 + g * one_m_b1;
    const float vi = v[i] * b2 + one_m_b2 * (g * g);
    const float denom = std::sqrt(vi) / bc2_sqrt + epsf;
    m[i] = mi;
    v[i] = vi;
    param[i] = p + neg_step_size * (mi / denom);
  }
}

}  // namespace anvil::cpu
