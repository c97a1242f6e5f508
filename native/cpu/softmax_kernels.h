// The inner loops of the fused softmax kernels (online log-sum-exp + entropy; sampling's exp,
// candidate compaction and threshold search), in one version per vector ISA, chosen at run time
// (private to native/cpu). "avx2" (softmax_kernels.cpp; portable C++ when built without AVX2) runs
// everywhere; "avx512" (softmax_kernels_avx512.cpp, its own target attribute) only where the CPU has
// it. The default is the widest one usable; ANVIL_SIMD=avx2 or set_simd_isa() picks another, for
// benchmarks and tests. Their exp polynomials differ (AVX2: Cephes expf; AVX-512: exp2f with
// log2 e folded into the scale), each within about 2 ulp; sums differ in their order too.
#pragma once
#include <cstdint>

#include "anvil/simd_isa.h"

namespace anvil::cpu {

// e^(z - m) is 0 below this (float underflow); clamping keeps 0 * (z - m) finite for z = -inf.
constexpr float kExpFloor = -104.0f;

struct SoftmaxKernels {
  const char* name;
  // Over x[0..n): d = max(x * scale - m, kExpFloor) (x * scale - m fused); adds sum e^d to *s and
  // sum e^d * d to *t. m >= every x * scale, and x has no NaN.
  void (*exp_sums)(const float* x, int64_t n, float scale, float m, float* s, float* t);
  // e[i] = e^max(x[i] * scale - m, kExpFloor); returns sum e. The max maps to 1 within a few ulp
  // (the compiler may fuse x * scale - m into one FMA).
  float (*exp_store)(float* e, const float* x, int64_t n, float scale, float m);
  // Appends (e[i], base + i) for every e[i] >= floor_v to val / idx at `count`; returns the new
  // count. Writes up to 15 elements past the new end (the buffers hold V + 16).
  int64_t (*compact)(const float* e, int64_t n, int64_t base, float floor_v, float* val, int32_t* idx, int64_t count);
  // Sum (float lanes, double across blocks of 4096) and count of x[i] >= t, for x >= 0.
  void (*masked_sum_count)(const float* x, int64_t n, float t, double* sum, int64_t* count);
  // Copies the x[i] in [lo, hi) to out, in order; returns how many. out may be x (in place);
  // writes up to 15 elements past the new end.
  int64_t (*compact_range)(const float* x, int64_t n, float lo, float hi, float* out);
};

// The kernels in use (the widest usable ISA unless set otherwise: anvil/simd_isa.h).
const SoftmaxKernels& softmax_kernels();

// softmax_kernels_avx512.cpp: null when not compiled in or the CPU lacks AVX-512F.
const SoftmaxKernels* softmax_kernels_avx512();

}  // namespace anvil::cpu
