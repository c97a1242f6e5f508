// AdamW with decoupled weight decay, in the same order of float operations as torch's
// single-tensor AdamW (and native/cpu/adamw.cpp); scalars are formed in double on the host:
//   p *= 1 - lr * wd;  m = m b1 + (1 - b1) g;  v = v b2 + (1 - b2) g^2
//   p += -(lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include <cmath>
#include "common.cuh"

namespace {

// param, grad, m, v (n), in place
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float decay, float b1, float b2,
                             float one_m_b1, float one_m_b2, float neg_step_size, float bc2_sqrt, float eps) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = grad[i];
    const float p = param[i] * decay;
    const float mi = m[i] * b1 + g * one_m_b1;
    const float vi = v[i] * b2 + one_m_b2 * (g * g);
    const float denom = __fsqrt_rn(vi) / bc2_sqrt + eps;
    m[i] = mi;
    v[i] = vi;
    param[i] = p + neg_step_size * __fdiv_rn(mi, denom);
  }
}

}  // namespace

extern "C" int anvil_cuda_adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                                float beta2, float eps, float weightDecay, int step, char* err, size_t errlen) {
  REQUIRE(step >= 1, "step must be >= 1 (1-based, for bias correction), got %d", step);
  if (n <= 0) return 0;
  const double t = step;
  const float neg_step_size = static_cast<float>(-(lr / (1.0 - std::pow((double)beta1, t))));
  const float bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow((double)beta2, t)));
  const float decay = static_cast<float>(1.0 - (double)lr * weightDecay);
  adamw_kernel<<<anvil_cuda::grid_for(n, 256), 256>>>(param, grad, m, v, n, decay, beta1, beta2, static_cast<float>(1.0 - beta1),
                                                      static_cast<float>(1.0 - beta2), neg_step_size, bc2_sqrt, eps);
  CHECK_LAUNCH();
  return 0;
}
