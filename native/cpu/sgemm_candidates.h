// The sgemm implementations that matmul.cpp chooses between (private to native/cpu).
// Each computes C (M, N) = alpha * op(A) @ op(B) (+ C when accumulate), row-major with row
// strides, for M > 8 and N, K > 0: matmul.cpp handles beta, empty products and few-row
// (decode) products before dispatching.
//
// Each built-in candidate also has a bf16 variant: the same product with B stored in bf16
// (frozen weights), widened to f32 as its panels are packed. OpenBLAS has none (null).
#pragma once
#include <cstdint>

#include "bf16.h"

namespace anvil::cpu::gemm {

using SgemmFn = void (*)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);

using SgemmBf16Fn = void (*)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                             int64_t lda, const bf16_t* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);

// sgemm_avx2.cpp: 6x16 FMA micro-kernel on ymm registers (portable C++ when built without AVX2).
void sgemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);
void sgemm_avx2_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const bf16_t* B, int64_t ldb, bool accumulate, float* C, int64_t ldc);

// sgemm_avx512.cpp: 12x32 micro-kernel on zmm registers; null when not compiled in.
// avx512_usable() says whether this CPU (and OS) runs it.
extern const SgemmFn sgemm_avx512;
extern const SgemmBf16Fn sgemm_avx512_bf16;
bool avx512_usable();

// sgemm_openblas.cpp: cblas_sgemm, one single-threaded call per block of rows; null when the
// addon was built without OpenBLAS.
extern const SgemmFn sgemm_openblas;

// sgemm_avx2.cpp: products of at most kSmallM rows (decode steps) stream B once instead of
// packing it; a_rows holds op(A)'s M rows contiguously (K floats each). Used by every candidate.
constexpr int64_t kSmallM = 8;
void sgemm_small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const float* B,
                   int64_t ldb, bool accumulate, float* C, int64_t ldc);
void sgemm_small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const bf16_t* B,
                   int64_t ldb, bool accumulate, float* C, int64_t ldc);

}  // namespace anvil::cpu::gemm
