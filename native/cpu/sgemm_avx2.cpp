// The built-in AVX2 sgemm: the packed driver (sgemm_packed.h) with a 6x16 micro-kernel,
// 12 ymm accumulators, 2 B loads + 6 broadcasts + 12 FMAs per k. Also the few-row path shared
// by every candidate (decode steps).
#include <algorithm>
#include <cstdint>

#include "sgemm_candidates.h"
#include "sgemm_packed.h"

#if defined(__AVX2__) && defined(__FMA__)
#define ANVIL_GEMM_AVX2 1
#endif

namespace anvil::cpu::gemm {

namespace {

constexpr int64_t MR = 6;   // micro-tile rows
constexpr int64_t NR = 16;  // micro-tile columns (two ymm registers)

// C tile (mr, nr) = alpha * acc (+ C when load_c); acc is a full (MR, NR) row-major tile.
inline void store_tile(float* C, int64_t ldc, const float* acc, int64_t mr, int64_t nr, float alpha, bool load_c) {
  for (int64_t i = 0; i < mr; i++)
    for (int64_t j = 0; j < nr; j++) {
      float v = alpha * acc[i * NR + j];
      C[i * ldc + j] = load_c ? C[i * ldc + j] + v : v;
    }
}

#ifdef ANVIL_GEMM_AVX2

// A (kc, MR) packed, B (kc, NR) packed -> C (mr, nr) = alpha * A^T B (+ C when load_c)
void micro_kernel(int64_t kc, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc, float alpha,
                  bool load_c, int64_t mr, int64_t nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
    __m256 a;
    a = _mm256_broadcast_ss(A + 0), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(A + 1), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(A + 2), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(A + 3), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(A + 4), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(A + 5), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    A += MR;
    B += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (mr == MR && nr == NR) {
    auto row = [&](int64_t i, __m256 lo, __m256 hi) {
      float* c = C + i * ldc;
      lo = _mm256_mul_ps(lo, va);
      hi = _mm256_mul_ps(hi, va);
      if (load_c) {
        lo = _mm256_add_ps(_mm256_loadu_ps(c), lo);
        hi = _mm256_add_ps(_mm256_loadu_ps(c + 8), hi);
      }
      _mm256_storeu_ps(c, lo);
      _mm256_storeu_ps(c + 8, hi);
    };
    row(0, c00, c01), row(1, c10, c11), row(2, c20, c21);
    row(3, c30, c31), row(4, c40, c41), row(5, c50, c51);
    return;
  }
  alignas(32) float acc[MR * NR];
  _mm256_store_ps(acc + 0 * NR, c00), _mm256_store_ps(acc + 0 * NR + 8, c01);
  _mm256_store_ps(acc + 1 * NR, c10), _mm256_store_ps(acc + 1 * NR + 8, c11);
  _mm256_store_ps(acc + 2 * NR, c20), _mm256_store_ps(acc + 2 * NR + 8, c21);
  _mm256_store_ps(acc + 3 * NR, c30), _mm256_store_ps(acc + 3 * NR + 8, c31);
  _mm256_store_ps(acc + 4 * NR, c40), _mm256_store_ps(acc + 4 * NR + 8, c41);
  _mm256_store_ps(acc + 5 * NR, c50), _mm256_store_ps(acc + 5 * NR + 8, c51);
  store_tile(C, ldc, acc, mr, nr, alpha, load_c);
}

#else  // portable build: same packing, the compiler vectorises the tile loop as it can

void micro_kernel(int64_t kc, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc, float alpha,
                  bool load_c, int64_t mr, int64_t nr) {
  float acc[MR * NR] = {};
  for (int64_t k = 0; k < kc; k++, A += MR, B += NR)
    for (int64_t i = 0; i < MR; i++)
      for (int64_t j = 0; j < NR; j++) acc[i * NR + j] += A[i] * B[j];
  store_tile(C, ldc, acc, mr, nr, alpha, load_c);
}

#endif

struct Avx2Kernel {
  static constexpr int64_t MR = gemm::MR, NR = gemm::NR;
  static constexpr int64_t KC = 256;   // A micro-panel 6 KiB, B micro-panel 16 KiB (L1)
  static constexpr int64_t MC = 144;   // A block 144 KiB, fits Zen 3's 512 KiB L2
  static constexpr int64_t NC = 3072;  // packed B block 3 MiB, fits L3
  static void micro(int64_t kc, const float* A, const float* B, float* C, int64_t ldc, float alpha, bool load_c,
                    int64_t mr, int64_t nr) {
    micro_kernel(kc, A, B, C, ldc, alpha, load_c, mr, nr);
  }
};

// Few-row products (decode steps: M = a batch of 1..8 tokens) are matrix-vector work, bound by
// reading B once. Packing would triple that traffic and pad A panels to 6 rows, so stream B
// directly instead.

// rows a (R, K) contiguous, b (K) -> out (R) = a @ b. All R rows share each load of b, and
// U accumulators per row (R * U >= 8 chains in flight) hide the FMA latency.
template <int R, int U, class TB>
inline void dot_rows(const float* a, int64_t K, const TB* b, float* out) {
#ifdef ANVIL_GEMM_AVX2
  __m256 acc[R][U];
  for (int i = 0; i < R; i++)
    for (int u = 0; u < U; u++) acc[i][u] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * U <= K; k += 8 * U) {
    __m256 bv[U];
    for (int u = 0; u < U; u++) bv[u] = load8_f32(b + k + 8 * u);
    for (int i = 0; i < R; i++)
      for (int u = 0; u < U; u++) acc[i][u] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i * K + k + 8 * u), bv[u], acc[i][u]);
  }
  for (int i = 0; i < R; i++) {
    __m256 v = acc[i][0];
    for (int u = 1; u < U; u++) v = _mm256_add_ps(v, acc[i][u]);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float t = _mm_cvtss_f32(h);
    for (int64_t kk = k; kk < K; kk++) t += a[i * K + kk] * as_f32(b[kk]);
    out[i] = t;
  }
#else
  for (int i = 0; i < R; i++) {
    float t = 0.0f;
    for (int64_t k = 0; k < K; k++) t += a[i * K + k] * as_f32(b[k]);
    out[i] = t;
  }
#endif
}

// B is f32 or bf16 (widened as it is loaded).
template <class TB>
void small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const TB* B, int64_t ldb,
             bool accumulate, float* C, int64_t ldc) {
  const bool par = N * K >= (1 << 15);
  if (trans_b) {  // B stored (N, K): one dot product per output, rows of B are contiguous
    // Rows of A go in groups of 4 (their K floats stay in L1); a chunk of B rows is reused
    // by every group from L2, so B streams from memory once whatever M is.
    constexpr int64_t kRowsB = 32;
    const int64_t chunks = (N + kRowsB - 1) / kRowsB;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t cb = 0; cb < chunks; cb++) {
      const int64_t j0 = cb * kRowsB, j1 = std::min(N, j0 + kRowsB);
      for (int64_t i0 = 0; i0 < M; i0 += 4) {
        const int64_t r = std::min<int64_t>(4, M - i0);
        const float* ai = a_rows + i0 * K;
        for (int64_t j = j0; j < j1; j++) {
          const TB* bj = B + j * ldb;
          float s[4];
          switch (r) {
            case 1: dot_rows<1, 4>(ai, K, bj, s); break;
            case 2: dot_rows<2, 4>(ai, K, bj, s); break;
            case 3: dot_rows<3, 2>(ai, K, bj, s); break;
            default: dot_rows<4, 2>(ai, K, bj, s); break;
          }
          for (int64_t i = 0; i < r; i++) {
            float* c = C + (i0 + i) * ldc + j;
            *c = accumulate ? *c + alpha * s[i] : alpha * s[i];
          }
        }
      }
    }
    return;
  }
  // B stored (K, N): rows of C are sums of scaled rows of B; threads own column blocks. The
  // sum over K is taken kKBlock terms at a time into `part`, then added to `acc`, as the packed
  // kernels do with KC: one float running sum over K = 76,000 (the one-pass LM head's dhidden
  // product on an 8-row block at V = 152k) was 4e-5 off in relative terms, against 6e-7.
  constexpr int64_t kCols = 256, kKBlock = 256;
  const int64_t blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t j0 = blk * kCols, w = std::min(kCols, N - j0);
    alignas(32) float acc[kSmallM][kCols] = {};
    alignas(32) float part[kSmallM][kCols];
    for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
      for (int64_t i = 0; i < M; i++) std::fill(part[i], part[i] + w, 0.0f);
      for (int64_t k = k0; k < std::min(K, k0 + kKBlock); k++) {
        const TB* bk = B + k * ldb + j0;
        for (int64_t i = 0; i < M; i++) {
          const float aik = a_rows[i * K + k];
          float* pc = part[i];
#pragma omp simd
          for (int64_t j = 0; j < w; j++) pc[j] += aik * as_f32(bk[j]);
        }
      }
      for (int64_t i = 0; i < M; i++) {
        float* ac = acc[i];
#pragma omp simd
        for (int64_t j = 0; j < w; j++) ac[j] += part[i][j];
      }
    }
    for (int64_t i = 0; i < M; i++) {
      float* c = C + i * ldc + j0;
      for (int64_t j = 0; j < w; j++) c[j] = accumulate ? c[j] + alpha * acc[i][j] : alpha * acc[i][j];
    }
  }
}

}  // namespace

void sgemm_small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const float* B,
                   int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  small_m(trans_b, M, N, K, alpha, a_rows, B, ldb, accumulate, C, ldc);
}
void sgemm_small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const bf16_t* B,
                   int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  small_m(trans_b, M, N, K, alpha, a_rows, B, ldb, accumulate, C, ldc);
}

void sgemm_avx2(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  packed_sgemm<Avx2Kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
}

void sgemm_avx2_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const bf16_t* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  packed_sgemm<Avx2Kernel>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
}

}  // namespace anvil::cpu::gemm
