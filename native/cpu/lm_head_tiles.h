// Pieces shared by the fused LM-head ops (linear_logprob.cpp, linear_grpo_loss.cpp): thread
// helpers, the single-threaded BLAS guard for per-thread tile sgemms, and the softmax gradient
// of a logits tile. Private to native/cpu.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef ANVIL_HAVE_CBLAS
#include <cblas.h>
#endif

#include "anvil/matmul.h"
#include "online_softmax.h"

namespace anvil::cpu {

inline void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= V)
      throw std::out_of_range("targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                              " is out of range [0, V = " + std::to_string(V) + ")");
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// While alive, OpenBLAS runs each call on the calling thread only, so that our OpenMP threads
// can each run their own tile sgemm without two thread pools fighting over the cores. The
// previous setting is restored on exit (also on exceptions).
class BlasSingleThreaded {
 public:
  explicit BlasSingleThreaded(bool engage) {
#ifdef ANVIL_HAVE_CBLAS
    if (engage && openblas_get_num_threads() > 1) {
      saved_ = openblas_get_num_threads();
      openblas_set_num_threads(1);
    }
#else
    (void)engage;
#endif
  }
  ~BlasSingleThreaded() {
#ifdef ANVIL_HAVE_CBLAS
    if (saved_ > 0) openblas_set_num_threads(saved_);
#endif
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_ = 0;
};

// The sgemm of one contiguous tile: OpenBLAS when built with it (single-threaded inside our
// parallel regions, see BlasSingleThreaded), else the built-in sgemm, whose own OpenMP region
// is nested in ours and so runs on the calling thread.
// TB: float, or bf16 (uint16_t) for a frozen weight stored in bf16.
template <class TB>
inline void tile_gemm(float* out, const float* a, const TB* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                      bool trans_b, bool accumulate, float alpha) {
  matmul(out, a, b, M, N, K, trans_a, trans_b, accumulate, alpha);
}

// g (nb, vt) holds z = logits / T on entry and dL/dz on exit, for rows n0.. and vocab v0..
inline void softmax_grad_tile(float* g, int64_t n0, int64_t nb, int64_t v0, int64_t vt, const int32_t* targets,
                              const float* lse, const float* entropy, const float* dlogprob, const float* dentropy) {
  for (int64_t r = 0; r < nb; r++) {
    const int64_t i = n0 + r;
    float* gr = g + r * vt;
    const int64_t tgt = targets[i];
    if (tgt < 0) {
      std::fill(gr, gr + vt, 0.0f);
      continue;
    }
    // dL/dz_j = dlp (onehot_j - p_j) - dH p_j (z_j - mu) = -p_j (dlp + dH (z_j - mu)) + dlp onehot_j
    const float l = lse[i], mu = lse[i] - entropy[i], dlp = dlogprob[i], dh = dentropy[i];
    int64_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vl = _mm256_set1_ps(l), vmu = _mm256_set1_ps(mu), vdlp = _mm256_set1_ps(dlp),
                 vdh = _mm256_set1_ps(dh), vzero = _mm256_setzero_ps(), vfloor = _mm256_set1_ps(kExpFloor);
    for (; j + 8 <= vt; j += 8) {
      __m256 z = _mm256_loadu_ps(gr + j);
      __m256 p = simd::exp(_mm256_max_ps(_mm256_sub_ps(z, vl), vfloor));
      __m256 w = _mm256_fmadd_ps(vdh, _mm256_sub_ps(z, vmu), vdlp);
      _mm256_storeu_ps(gr + j, _mm256_sub_ps(vzero, _mm256_mul_ps(p, w)));
    }
#endif
    for (; j < vt; j++) {
      const float z = gr[j];
      const float p = std::exp(std::max(z - l, kExpFloor));
      gr[j] = -p * (dlp + dh * (z - mu));
    }
    if (tgt >= v0 && tgt < v0 + vt) gr[tgt - v0] += dlp;
  }
}

}  // namespace anvil::cpu
