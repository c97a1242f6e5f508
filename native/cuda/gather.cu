// Row gather: out[m] = inp[idx[m]]. An index outside [0, N) zero-fills its row and raises
// the BAD_TOKEN flag (reported by anvil_cuda_sync).
#include "common.cuh"

namespace {

// inp (N, C), idx (M) -> out (M, C); one block per output row
__global__ void gather_rows_kernel(float* out, const float* inp, const int32_t* idx, int N, int C, unsigned int* flags) {
  const int m = blockIdx.x;
  const int r = idx[m];
  float* dst = out + (int64_t)m * C;
  if (r < 0 || r >= N) {
    if (threadIdx.x == 0) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = 0.0f;
    return;
  }
  const float* src = inp + (int64_t)r * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

}  // namespace

extern "C" int anvil_cuda_gather_rows(float* out, const float* inp, const int32_t* idx, int M, int N, int C, char* err, size_t errlen) {
  if (M <= 0 || C <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  gather_rows_kernel<<<M, 128>>>(out, inp, idx, N, C, flags);
  CHECK_LAUNCH();
  return 0;
}
