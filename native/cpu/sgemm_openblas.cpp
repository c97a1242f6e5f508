// OpenBLAS's sgemm as a candidate (when the addon is built with it).
//
// One threading layer: OpenMP. Debian's default OpenBLAS runs its own pthreads, which spin
// after every call; next to our OpenMP team on the same cores, each small op then waits a
// scheduler quantum for a preempted thread (measured: a tiny-model SFT step 2.5 s -> 0.38 s
// with OpenBLAS held at 1 thread). So OpenBLAS stays single-threaded and this splits rows
// across the OpenMP team itself.
#include "sgemm_candidates.h"

#ifdef ANVIL_HAVE_CBLAS
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace anvil::cpu::gemm {
namespace {

const bool blas_single_threaded = (openblas_set_num_threads(1), true);

void sgemm_openblas_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  (void)blas_single_threaded;
  for (int64_t d : {M, N, K, lda, ldb, ldc})
    if (d > INT_MAX) throw std::runtime_error("sgemm: dimension " + std::to_string(d) + " exceeds the BLAS int range");
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  // Row blocks of op(A) and C, one single-threaded BLAS call each (multiples of 16 rows).
  const int64_t parts = (threads > 1 && M * N * K >= (int64_t(1) << 21)) ? std::min<int64_t>(threads, (M + 15) / 16) : 1;
  const int64_t rows = ((M + parts - 1) / parts + 15) / 16 * 16;
  const float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts)) if (parts > 1)
  for (int64_t p = 0; p < parts; p++) {
    const int64_t i0 = p * rows, m = std::min(rows, M - i0);
    if (m <= 0) continue;
    const float* Ap = trans_a ? A + i0 : A + i0 * lda;  // op(A) rows i0.. are A's columns when transposed
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(N), static_cast<int>(K), alpha, Ap, static_cast<int>(lda), B,
                static_cast<int>(ldb), beta, C + i0 * ldc, static_cast<int>(ldc));
  }
}

}  // namespace
const SgemmFn sgemm_openblas = sgemm_openblas_impl;
}  // namespace anvil::cpu::gemm

#else

namespace anvil::cpu::gemm {
const SgemmFn sgemm_openblas = nullptr;
}

#endif
