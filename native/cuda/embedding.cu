// Token embedding. Forward copies table rows; backward scatters rows of dout into dtable with
// atomicAdd (repeated ids in a batch hit the same row). Ids outside [0, V) zero the output
// row / are skipped, and raise BAD_TOKEN for anvil_cuda_sync. The forward's table may be stored
// in bf16 (a frozen embedding): rows are widened to f32 as they are copied.
#include "common.cuh"

namespace {

// ids (N), table (V, C) f32 or bf16 -> out (N, C); one block per token
template <typename WT>
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const WT* table, int C, int V, unsigned int* flags) {
  const int n = blockIdx.x;
  const int id = ids[n];
  float* dst = out + (int64_t)n * C;
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = 0.0f;
    return;
  }
  const WT* src = table + (int64_t)id * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = anvil_cuda::to_f32(src[c]);
}

// dtable (V, C) +=, dout (N, C), ids (N); one block per token
__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* ids, int C, int V, unsigned int* flags) {
  const int n = blockIdx.x;
  const int id = ids[n];
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) atomicOr(flags, anvil_cuda::BAD_TOKEN);
    return;
  }
  const float* src = dout + (int64_t)n * C;
  float* dst = dtable + (int64_t)id * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(dst + c, src[c]);
}

}  // namespace

extern "C" {

int anvil_cuda_embedding_forward(float* out, const int32_t* ids, const void* table, int table_dtype, int N, int C, int V, char* err,
                                 size_t errlen) {
  REQUIRE(table_dtype == ANVIL_CUDA_F32 || table_dtype == ANVIL_CUDA_BF16, "table_dtype must be 0 (f32) or 1 (bf16), got %d", table_dtype);
  if (N <= 0 || C <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  if (table_dtype == ANVIL_CUDA_BF16)
    embedding_forward_kernel<anvil_cuda::bf16_bits><<<N, 128>>>(out, ids, static_cast<const anvil_cuda::bf16_bits*>(table), C, V, flags);
  else
    embedding_forward_kernel<float><<<N, 128>>>(out, ids, static_cast<const float*>(table), C, V, flags);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C, int V, char* err, size_t errlen) {
  if (N <= 0 || C <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  embedding_backward_kernel<<<N, 128>>>(dtable, dout, ids, C, V, flags);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
