// SwiGLU: out = silu(gate) * up, silu(x) = x * sigmoid(x).
#include "common.cuh"

namespace {

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + __expf(-x)); }

// gate, up (n) -> out (n)
__global__ void swiglu_forward_kernel(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = gate[i];
    out[i] = g * sigmoid(g) * up[i];
  }
}

// dout, gate, up (n) -> dgate, dup (n)
// d silu(g) / dg = s * (1 + g * (1 - s)), s = sigmoid(g)
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = gate[i], u = up[i], d = dout[i];
    const float s = sigmoid(g);
    dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
    dup[i] = d * g * s;
  }
}

}  // namespace

extern "C" {

int anvil_cuda_swiglu_forward(float* out, const float* gate, const float* up, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  swiglu_forward_kernel<<<anvil_cuda::grid_for(n, 256), 256>>>(out, gate, up, n);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n, char* err, size_t errlen) {
  if (n <= 0) return 0;
  swiglu_backward_kernel<<<anvil_cuda::grid_for(n, 256), 256>>>(dgate, dup, dout, gate, up, n);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
