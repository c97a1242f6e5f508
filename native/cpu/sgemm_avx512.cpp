// The built-in AVX-512 sgemm: the packed driver (sgemm_packed.h) with a 12x32 micro-kernel,
// 24 zmm accumulators, 2 B loads + 12 broadcasts + 24 FMAs per k: twice the work per
// instruction of the AVX2 kernel, and half its L2 traffic per FLOP. Edge tiles use masked
// loads and stores.
//
// One binary for every x86-64 CPU: only this file's kernel is compiled for AVX-512 (a target
// pragma after the shared headers), and matmul.cpp calls it only when avx512_usable(). Its
// bf16 variant also widens (K, N)-stored bf16 rows with AVX-512 while packing (Kernel::widen).
#include "sgemm_candidates.h"
#include "sgemm_packed.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__AVX2__) && !defined(ANVIL_NO_AVX512)
#define ANVIL_GEMM_AVX512 1
#endif

#ifdef ANVIL_GEMM_AVX512
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif

namespace anvil::cpu::gemm {
namespace {

struct Avx512Kernel {
  static constexpr int64_t MR = 12, NR = 32;
  static constexpr int64_t KC = 256;   // B micro-panel 32 KiB (L1 is 48 KiB on Zen 4/5 and Ice Lake+)
  static constexpr int64_t MC = 144;   // A block 144 KiB (L2)
  static constexpr int64_t NC = 3072;  // packed B block 3 MiB (L3)

  // src (n) bf16 -> dst (n) f32, 16 at a time (the driver packs (K, N) bf16 rows with it)
  static void widen(float* dst, const bf16_t* src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
      // maskz forms: GCC 12 warns about the unmasked ones' undefined pass-through operand
      const __m512i w = _mm512_maskz_cvtepu16_epi32(0xFFFF, h);
      _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, w, 16)));
    }
    for (; i < n; i++) dst[i] = bf16_to_f32(src[i]);
  }

  // A (kc, MR) packed, B (kc, NR) packed -> C (mr, nr) = alpha * A^T B (+ C when load_c)
  static void micro(int64_t kc, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc,
                    float alpha, bool load_c, int64_t mr, int64_t nr) {
    __m512 lo[MR], hi[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) lo[i] = hi[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
      const __m512 b0 = _mm512_load_ps(B), b1 = _mm512_load_ps(B + 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; i++) {
        const __m512 a = _mm512_set1_ps(A[i]);
        lo[i] = _mm512_fmadd_ps(a, b0, lo[i]);
        hi[i] = _mm512_fmadd_ps(a, b1, hi[i]);
      }
      A += MR;
      B += NR;
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr <= 16 ? __mmask16(0) : __mmask16((1u << (nr - 16)) - 1);
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      if (i >= mr) break;
      float* c = C + i * ldc;
      __m512 x = _mm512_mul_ps(lo[i], va), y = _mm512_mul_ps(hi[i], va);
      if (load_c) {  // masked loads never touch memory past the tile's edge
        x = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), x);
        y = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), y);
      }
      _mm512_mask_storeu_ps(c, m0, x);
      _mm512_mask_storeu_ps(c + 16, m1, y);
    }
  }
};

}  // namespace
}  // namespace anvil::cpu::gemm

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace anvil::cpu::gemm {
namespace {
// Compiled for the baseline ISA (after the pragma): only Avx512Kernel::micro uses zmm.
void sgemm_avx512_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  packed_sgemm<Avx512Kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
}
// B in bf16: widened to f32 while packed (sgemm_packed.h), then the same micro-kernel.
void sgemm_avx512_bf16_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                            int64_t lda, const bf16_t* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  packed_sgemm<Avx512Kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
}
}  // namespace
const SgemmFn sgemm_avx512 = sgemm_avx512_impl;
const SgemmBf16Fn sgemm_avx512_bf16 = sgemm_avx512_bf16_impl;
// __builtin_cpu_supports also checks that the OS saves zmm state (XCR0).
bool avx512_usable() { return __builtin_cpu_supports("avx512f"); }
}  // namespace anvil::cpu::gemm

#else

namespace anvil::cpu::gemm {
const SgemmFn sgemm_avx512 = nullptr;
const SgemmBf16Fn sgemm_avx512_bf16 = nullptr;
bool avx512_usable() { return false; }
}  // namespace anvil::cpu::gemm

#endif
