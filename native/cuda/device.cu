// Library entry points that are not ops: errors, devices, memory, sync, and the shared
// workspace / error-flag word used by the kernels.
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include "common.cuh"

namespace anvil_cuda {

int fail(cudaError_t e, const char* expr, const char* where, char* err, size_t errlen) {
  if (err && errlen) {
    std::snprintf(err, errlen, "%s: %s (%d): %s [%s]", where, cudaGetErrorName(e), static_cast<int>(e),
                  cudaGetErrorString(e), expr);
  }
  cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  return static_cast<int>(e);
}

int invalid(char* err, size_t errlen, const char* where, const char* fmt, ...) {
  if (err && errlen) {
    int n = std::snprintf(err, errlen, "%s: ", where);
    if (n >= 0 && static_cast<size_t>(n) < errlen) {
      va_list ap;
      va_start(ap, fmt);
      std::vsnprintf(err + n, errlen - n, fmt, ap);
      va_end(ap);
    }
  }
  return ANVIL_CUDA_EINVAL;
}

static void* g_workspace = nullptr;
static size_t g_workspace_bytes = 0;

cudaError_t workspace(size_t bytes, void** out) {
  if (bytes > g_workspace_bytes) {
    if (g_workspace) {
      cudaError_t e = cudaFree(g_workspace);  // cudaFree waits for the kernels still using it
      g_workspace = nullptr;
      g_workspace_bytes = 0;
      if (e != cudaSuccess) return e;
    }
    size_t grown = bytes + bytes / 4;  // some headroom: sizes creep up with batch shapes
    cudaError_t e = cudaMalloc(&g_workspace, grown);
    if (e != cudaSuccess) return e;
    g_workspace_bytes = grown;
  }
  *out = g_workspace;
  return cudaSuccess;
}

static unsigned int* g_flags = nullptr;

cudaError_t error_flags(unsigned int** out) {
  if (!g_flags) {
    cudaError_t e = cudaMalloc(&g_flags, sizeof(unsigned int));
    if (e != cudaSuccess) return e;
    e = cudaMemset(g_flags, 0, sizeof(unsigned int));
    if (e != cudaSuccess) return e;
  }
  *out = g_flags;
  return cudaSuccess;
}

__global__ void fill32_kernel(uint32_t* dst, uint32_t bits, size_t count) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    dst[i] = bits;
}

}  // namespace anvil_cuda

using namespace anvil_cuda;

extern "C" {

int anvil_cuda_abi_version(void) { return ANVIL_CUDA_ABI_VERSION; }

int anvil_cuda_device_count(int* count, char* err, size_t errlen) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
    *count = 0;
    std::snprintf(err, errlen, "no CUDA device: %s (%d): %s%s", cudaGetErrorName(e), static_cast<int>(e), cudaGetErrorString(e),
                  e == cudaErrorInsufficientDriver ? " (no NVIDIA driver is installed, or it is older than this CUDA runtime)" : "");
    return static_cast<int>(e);
  }
  CUDA_TRY(e);
  return 0;
}

int anvil_cuda_device_name(int device, char* name, size_t namelen, char* err, size_t errlen) {
  cudaDeviceProp prop;
  CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  std::snprintf(name, namelen, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                prop.totalGlobalMem / 1073741824.0);
  return 0;
}

int anvil_cuda_set_device(int device, char* err, size_t errlen) {
  CUDA_TRY(cudaSetDevice(device));
  return 0;
}

int anvil_cuda_current_stream(int* device, void** stream, char* err, size_t errlen) {
  *device = -1;
  *stream = nullptr;
  CUDA_TRY(cudaGetDevice(device));
  CUDA_TRY(cudaSetDevice(*device));  // binds the device's primary context to this thread
  *stream = static_cast<void*>(cudaStreamLegacy);
  return 0;
}

int anvil_cuda_malloc(void** ptr, size_t bytes, char* err, size_t errlen) {
  *ptr = nullptr;
  CUDA_TRY(cudaMalloc(ptr, bytes ? bytes : 4));  // a real pointer even for empty tensors
  return 0;
}

int anvil_cuda_free(void* ptr, char* err, size_t errlen) {
  CUDA_TRY(cudaFree(ptr));
  return 0;
}

int anvil_cuda_upload(void* dst, const void* src, size_t bytes, char* err, size_t errlen) {
  if (bytes) CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  return 0;
}

int anvil_cuda_download(void* dst, const void* src, size_t bytes, char* err, size_t errlen) {
  if (bytes) CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  return 0;
}

int anvil_cuda_copy(void* dst, const void* src, size_t bytes, char* err, size_t errlen) {
  if (bytes) CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
  return 0;
}

int anvil_cuda_memset(void* dst, int value, size_t bytes, char* err, size_t errlen) {
  if (bytes) CUDA_TRY(cudaMemsetAsync(dst, value, bytes, 0));
  return 0;
}

int anvil_cuda_fill32(void* dst, uint32_t bits, size_t count, char* err, size_t errlen) {
  if (count == 0) return 0;
  fill32_kernel<<<grid_for(static_cast<int64_t>(count), 256), 256>>>(static_cast<uint32_t*>(dst), bits, count);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_sync(char* err, size_t errlen) {
  CUDA_TRY(cudaDeviceSynchronize());
  if (g_flags) {
    unsigned int flags = 0;
    CUDA_TRY(cudaMemcpy(&flags, g_flags, sizeof flags, cudaMemcpyDeviceToHost));
    if (flags) {
      CUDA_TRY(cudaMemset(g_flags, 0, sizeof flags));
      REQUIRE(!(flags & BAD_TOKEN), "a kernel met a token id / row index outside its table (the row was skipped)");
      REQUIRE(!(flags & BAD_POSITION), "a kernel met a cache position outside the KV cache (the row was skipped)");
      REQUIRE(!(flags & BAD_LOGITS), "sample: a logits row contains NaN or +inf, or is all -inf (token 0 was returned)");
    }
  }
  return 0;
}

}  // extern "C"
