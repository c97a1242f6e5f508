// A tiny CUDA emulator for checking the logic of native/cuda/*.cu on a machine without a GPU.
// Not a model of performance or of real-GPU memory semantics. Every CUDA thread of a block is
// a coroutine on one OS thread (ucontext to start, _setjmp/_longjmp to switch); blocks run one
// after another, so __shared__ can be a function-local static. __syncthreads waits for every
// live thread of the block, a warp shuffle for every live lane of the warp; a barrier that can
// never be released (divergent __syncthreads) aborts with a message. Device memory is host
// memory and every call is synchronous. build.sh rewrites `kernel<<<grid, block>>>(args)` as
// `emu::launch(grid, block, kernel)(args)` and compiles the library with g++.
#pragma once
#include <setjmp.h>
#include <ucontext.h>
#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

using std::max;
using std::min;

struct uint3 {
  unsigned int x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace emu {

enum State { READY, WAIT_BLOCK, WAIT_WARP, DONE };

struct Thread {
  uint3 idx;
  State state = READY;
  bool started = false;
  jmp_buf jb;
  ucontext_t uc;
  std::vector<char> stack;
  uint64_t slot = 0;  // warp shuffle mailbox
};

inline std::vector<Thread> threads;
inline Thread* cur = nullptr;
inline uint3 block_idx;
inline dim3 block_dim, grid_dim;
inline jmp_buf sched_jb;
inline ucontext_t sched_uc;
inline std::function<void()> body;

inline void yield(State s) {
  cur->state = s;
  if (!_setjmp(cur->jb)) _longjmp(sched_jb, 1);
}

inline void trampoline() {
  body();
  cur->state = DONE;
  _longjmp(sched_jb, 1);
}

inline void resume(Thread& t) {
  cur = &t;
  t.state = READY;
  if (_setjmp(sched_jb)) return;  // the thread yielded or finished
  if (!t.started) {
    t.started = true;
    getcontext(&t.uc);
    t.uc.uc_stack.ss_sp = t.stack.data();
    t.uc.uc_stack.ss_size = t.stack.size();
    t.uc.uc_link = nullptr;
    makecontext(&t.uc, trampoline, 0);
    swapcontext(&sched_uc, &t.uc);
  } else {
    _longjmp(t.jb, 1);
  }
}

inline void run_block(unsigned int n) {
  for (unsigned int i = 0; i < n; i++) {
    Thread& t = threads[i];
    t.state = READY;
    t.started = false;
  }
  const unsigned int nwarps = (n + 31) / 32;
  for (;;) {
    bool ran = false;
    for (unsigned int i = 0; i < n; i++)
      if (threads[i].state == READY) {
        resume(threads[i]);
        ran = true;
      }
    if (ran) continue;
    // Everyone live is waiting: release a warp whose live lanes all wait at a shuffle, or the
    // whole block when every live thread waits at __syncthreads.
    bool released = false, any_live = false, all_block = true;
    for (unsigned int w = 0; w < nwarps; w++) {
      bool live = false, all_warp = true;
      for (unsigned int i = 32 * w; i < std::min(n, 32 * w + 32); i++) {
        if (threads[i].state == DONE) continue;
        live = true;
        if (threads[i].state != WAIT_WARP) all_warp = false;
      }
      if (live && all_warp) {
        for (unsigned int i = 32 * w; i < std::min(n, 32 * w + 32); i++)
          if (threads[i].state == WAIT_WARP) threads[i].state = READY;
        released = true;
      }
    }
    for (unsigned int i = 0; i < n; i++) {
      if (threads[i].state == DONE) continue;
      any_live = true;
      if (threads[i].state != WAIT_BLOCK) all_block = false;
    }
    if (!any_live) return;
    if (released) continue;
    if (all_block) {
      for (unsigned int i = 0; i < n; i++)
        if (threads[i].state == WAIT_BLOCK) threads[i].state = READY;
      continue;
    }
    std::fprintf(stderr, "cuda emulator: deadlock (divergent __syncthreads or shuffle) in block (%u, %u, %u)\n", block_idx.x, block_idx.y,
                 block_idx.z);
    std::abort();
  }
}

template <class F>
void run(dim3 g, dim3 b, F f) {
  const unsigned int n = b.x * b.y * b.z;
  grid_dim = g;
  block_dim = b;
  if (threads.size() < n) threads.resize(n);
  for (unsigned int i = 0; i < n; i++) {
    if (threads[i].stack.empty()) threads[i].stack.resize(256 * 1024);
    threads[i].idx = {i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
  }
  body = f;
  for (unsigned int bz = 0; bz < g.z; bz++)
    for (unsigned int by = 0; by < g.y; by++)
      for (unsigned int bx = 0; bx < g.x; bx++) {
        block_idx = {bx, by, bz};
        run_block(n);
      }
  body = nullptr;
}

template <class F>
struct Launcher {
  dim3 g, b;
  F f;
  template <class... A>
  void operator()(A... a) {
    run(g, b, [&] { f(a...); });
  }
};
template <class F>
Launcher<F> launch(dim3 g, dim3 b, F f) {
  return {g, b, f};
}
}  // namespace emu

#define threadIdx (emu::cur->idx)
#define blockIdx emu::block_idx
#define blockDim emu::block_dim
#define gridDim emu::grid_dim

inline void __syncthreads() { emu::yield(emu::WAIT_BLOCK); }

template <class T>
T __shfl_xor_sync(unsigned int, T v, int offset) {
  static_assert(sizeof(T) <= 8);
  const unsigned int t = threadIdx.x;  // blocks used here are 1-D
  std::memcpy(&emu::cur->slot, &v, sizeof(T));
  emu::yield(emu::WAIT_WARP);
  T r;
  std::memcpy(&r, &emu::threads[(t & ~31u) | ((t % 32) ^ offset)].slot, sizeof(T));
  emu::yield(emu::WAIT_WARP);
  return r;
}

inline float atomicAdd(float* p, float v) {
  float old = *p;
  *p = old + v;
  return old;
}
inline unsigned int atomicOr(unsigned int* p, unsigned int v) {
  unsigned int old = *p;
  *p = old | v;
  return old;
}

inline float __expf(float x) { return std::exp(x); }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline unsigned int __float_as_uint(float f) { return std::bit_cast<unsigned int>(f); }
inline float __uint_as_float(unsigned int u) { return std::bit_cast<float>(u); }

// ---- runtime API -----------------------------------------------------------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidValue = 1,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorUnknown = 999,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
using cudaStream_t = void*;
// The real runtime's handle value for the legacy default stream (driver: CU_STREAM_LEGACY).
#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
};

inline const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }
inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  std::strcpy(p->name, "anvil CUDA emulator");
  p->major = 8;
  p->minor = 0;
  p->totalGlobalMem = size_t(1) << 30;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  // Poison fresh memory, as a GPU would not zero it either.
  *p = static_cast<T*>(std::malloc(bytes));
  if (!*p) return cudaErrorMemoryAllocation;
  std::memset(*p, 0xff, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t) { return cudaMemcpy(d, s, n, k); }
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t) { return cudaMemset(d, v, n); }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
