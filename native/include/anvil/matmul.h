// Single-precision matrix multiply, row-major:
//   out (M, N) = alpha * op(a) @ op(b) (+ out when accumulate)
//   op(a) (M, K): a is (M, K), or (K, M) stored and transposed when trans_a
//   op(b) (K, N): b is (K, N), or (N, K) stored and transposed when trans_b (nn.Linear weights)
#pragma once
#include <cstdint>

namespace anvil::cpu {

// The default sgemm: cblas_sgemm when the addon is built with a BLAS, else sgemm_builtin.
// Products of at most 8 rows (decode steps) always take the built-in matrix-vector path.
void matmul(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha);

// The built-in sgemm (always compiled): packed, cache-blocked, 6x16 AVX2/FMA micro-kernel,
// OpenMP over output tiles. With accumulate = false, out is never read (NaNs in it vanish).
void sgemm_builtin(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                   bool trans_b, bool accumulate, float alpha);

// BLAS-style entry for kernels that multiply sub-blocks (fused ops): row-major with row
// strides, C (M, N) = alpha * op(A) @ op(B) + beta * C. Same dispatch as matmul.
// beta = 0 never reads C.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The built-in sgemm with strides (what sgemm uses without BLAS).
void sgemm_builtin_strided(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Name of the library behind matmul(): "OpenBLAS" or "builtin".
const char* matmul_backend_name();

}  // namespace anvil::cpu
