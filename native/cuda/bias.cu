// Bias add and its backward (a column sum). The backward gives each thread one column and
// walks the rows in order: coalesced, deterministic, no atomics.
#include "common.cuh"

namespace {

// out (N, C) += bias (C)
__global__ void bias_add_kernel(float* out, const float* bias, int64_t total, int C) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
    out[i] += bias[i % C];
}

// dbias (C) += sum over rows of dout (N, C)
__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
  for (int n = 0; n < N; n++) acc += dout[(int64_t)n * C + c];
  dbias[c] += acc;
}

}  // namespace

extern "C" {

int anvil_cuda_bias_add(float* out, const float* bias, int N, int C, char* err, size_t errlen) {
  const int64_t total = (int64_t)N * C;
  if (total <= 0) return 0;
  bias_add_kernel<<<anvil_cuda::grid_for(total, 256), 256>>>(out, bias, total, C);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_bias_backward(float* dbias, const float* dout, int N, int C, char* err, size_t errlen) {
  if (C <= 0) return 0;
  bias_backward_kernel<<<(C + 127) / 128, 128>>>(dbias, dout, N, C);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
