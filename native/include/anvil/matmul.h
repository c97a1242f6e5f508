// Single-precision matrix multiply, row-major:
//   out (M, N) = alpha * op(a) @ op(b) (+ out when accumulate)
//   op(a) (M, K): a is (M, K), or (K, M) stored and transposed when trans_a
//   op(b) (K, N): b is (K, N), or (N, K) stored and transposed when trans_b (nn.Linear weights)
// Every entry also takes b stored in bf16 (uint16_t bits, frozen weights): b is widened to f32
// as it is packed, the arithmetic is f32.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace anvil::cpu {

using bf16_t = uint16_t;

// The default sgemm: the selected candidate (see set_gemm). Products of at most 8 rows
// (decode steps) always take the built-in matrix-vector path.
void matmul(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha);
void matmul(float* out, const float* a, const bf16_t* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha);

// BLAS-style entry for kernels that multiply sub-blocks (fused ops): row-major with row
// strides, C (M, N) = alpha * op(A) @ op(B) + beta * C. Same dispatch as matmul.
// beta = 0 never reads C.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// sgemm candidates usable on this machine with this build, in a fixed order among
// "openblas" (built with OpenBLAS), "avx2" (built-in, always), "avx512" (built-in, CPU with AVX-512F).
std::vector<std::string> gemm_candidates();
// Makes `name` the sgemm behind matmul/sgemm; throws std::invalid_argument when unknown or unusable.
void set_gemm(const std::string& name);
// The selected candidate (before any set_gemm: the widest built-in kernel the CPU runs).
const char* gemm_selected();
// sgemm with a named candidate (tests, benchmarks, the selection timing).
void sgemm_with(const std::string& name, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// bf16 b: throws std::invalid_argument for a candidate without a bf16 variant (openblas).
void sgemm_with(const std::string& name, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The built-in AVX2 sgemm (always compiled): packed, cache-blocked, 6x16 micro-kernel, OpenMP
// over output tiles. With accumulate = false, out is never read (NaNs in it vanish).
void sgemm_builtin(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                   bool trans_b, bool accumulate, float alpha);
void sgemm_builtin_strided(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace anvil::cpu
