// AdamW with decoupled weight decay (Loshchilov & Hutter), PyTorch's ordering:
//   p *= 1 - lr * wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#include <cmath>
#include "common.cuh"

namespace {

// param, grad, m, v (n), in place
__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = param[i] * (1.0f - lr * weight_decay);
    p -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    param[i] = p;
  }
}

}  // namespace

extern "C" int anvil_cuda_adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1,
                                float beta2, float eps, float weightDecay, int step, char* err, size_t errlen) {
  REQUIRE(step >= 1, "step must be >= 1 (1-based, for bias correction), got %d", step);
  if (n <= 0) return 0;
  // Bias corrections in double on the host: b^t for large t underflows gracefully to 0.
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta1), step));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(beta2), step));
  adamw_kernel<<<anvil_cuda::grid_for(n, 256), 256>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2);
  CHECK_LAUNCH();
  return 0;
}
