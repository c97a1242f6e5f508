// sgemm: OpenBLAS when the build found it, and a built-in one that is always compiled (the
// fallback when there is no BLAS, and a yardstick for the benchmark).
//
// The built-in sgemm follows the BLIS/GotoBLAS structure:
//   for jc in N step NC:                 B block  (KC, NC) packed into 16-wide panels  (L3)
//     for pc in K step KC:               A        (M, KC)  packed into 6-tall panels   (L2 per MC)
//       parallel over (MC rows) x (column chunk) tiles:
//         for jr in chunk step 16:       one B micro-panel (KC, 16), 16 KiB, stays in L1
//           for ir in MC step 6:         one A micro-panel (6, KC) streams from L2
//             6x16 micro-kernel: 12 ymm accumulators, 2 B loads + 6 broadcasts + 12 FMAs per k
// Packing absorbs the transposes, so the kernel sees one layout. Edge tiles are zero-padded
// in the packed buffers and written through a small scratch tile. When all rows fit one MC
// block, each task packs its B micro-panels itself, straight into L1. Products of at most 8
// rows (decode steps) skip packing altogether: see gemm_small_m.
#include "anvil/matmul.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ANVIL_GEMM_AVX2 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef ANVIL_HAVE_CBLAS
#include <cblas.h>
#endif

namespace anvil::cpu {

namespace {

constexpr int64_t MR = 6;     // micro-tile rows
constexpr int64_t NR = 16;    // micro-tile columns (two ymm registers)
constexpr int64_t KC = 256;   // depth of a packed block: A micro-panel 6 KiB, B micro-panel 16 KiB
constexpr int64_t MC = 144;   // rows per task: A block 144 KiB, fits Zen 3's 512 KiB L2
constexpr int64_t NC = 3072;  // columns per packed B block: 3 MiB, fits L3

// 64-byte aligned scratch owned by the calling thread and reused across calls (packing
// buffers are megabytes; allocating them per call costs page faults on every matmul).
struct Scratch {
  float* ptr = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(ptr); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(ptr);
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!ptr) {
        cap = 0;
        throw std::runtime_error("sgemm: out of memory for packing buffers (" + std::to_string(bytes) + " bytes)");
      }
      cap = n;
    }
    return ptr;
  }
};

// op(a)[i0 : i0+mr, p0 : p0+kc] -> dst (kc, MR), rows past mr zero-filled; lda = row stride of a
void pack_a_panel(float* dst, const float* a, int64_t lda, bool trans_a, int64_t i0, int64_t mr, int64_t p0,
                  int64_t kc) {
  if (trans_a) {  // a stored (K, M): each k holds the panel's rows contiguously
    for (int64_t k = 0; k < kc; k++) {
      const float* src = a + (p0 + k) * lda + i0;
      float* d = dst + k * MR;
      for (int64_t r = 0; r < mr; r++) d[r] = src[r];
      for (int64_t r = mr; r < MR; r++) d[r] = 0.0f;
    }
  } else {  // a stored (M, K): read each row contiguously, scatter with stride MR
    for (int64_t r = 0; r < mr; r++) {
      const float* src = a + (i0 + r) * lda + p0;
      for (int64_t k = 0; k < kc; k++) dst[k * MR + r] = src[k];
    }
    for (int64_t r = mr; r < MR; r++)
      for (int64_t k = 0; k < kc; k++) dst[k * MR + r] = 0.0f;
  }
}

#ifdef ANVIL_GEMM_AVX2
// src (8 rows, stride lds) -> dst (8 rows, stride ldd) transposed
inline void transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)), u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)), u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)), u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)), u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// op(b)[p0 : p0+kc, j0 : j0+nr] -> dst (kc, NR), columns past nr zero-filled; ldb = row stride of b
void pack_b_panel(float* dst, const float* b, int64_t ldb, bool trans_b, int64_t j0, int64_t nr, int64_t p0,
                  int64_t kc) {
  if (trans_b) {  // b stored (N, K): read each column of op(b) contiguously
#ifdef ANVIL_GEMM_AVX2
    if (nr == NR) {  // full panel: 8x8 register transposes, the common case for weight matrices
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8)
        for (int64_t c0 = 0; c0 < NR; c0 += 8) {
          const float* src = b + (j0 + c0) * ldb + p0 + k;
          transpose8x8(src, ldb, dst + k * NR + c0, NR);
        }
      for (int64_t c = 0; c < NR; c++) {
        const float* src = b + (j0 + c) * ldb + p0;
        for (int64_t kk = k; kk < kc; kk++) dst[kk * NR + c] = src[kk];
      }
      return;
    }
#endif
    for (int64_t c = 0; c < nr; c++) {
      const float* src = b + (j0 + c) * ldb + p0;
      for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = src[k];
    }
    for (int64_t c = nr; c < NR; c++)
      for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = 0.0f;
  } else {  // b stored (K, N): 16 contiguous floats per k
    for (int64_t k = 0; k < kc; k++) {
      const float* src = b + (p0 + k) * ldb + j0;
      float* d = dst + k * NR;
      if (nr == NR) {
        std::memcpy(d, src, NR * sizeof(float));
      } else {
        for (int64_t c = 0; c < nr; c++) d[c] = src[c];
        for (int64_t c = nr; c < NR; c++) d[c] = 0.0f;
      }
    }
  }
}

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

thread_local Scratch a_scratch, b_scratch;

// Few-row products (decode steps: M = a batch of 1..8 tokens) are matrix-vector work, bound by
// reading B once. Packing would triple that traffic and pad A panels to 6 rows, so stream B
// directly instead. a_rows holds the M rows of op(A) contiguously (K floats each).
constexpr int64_t kSmallM = 8;

// rows a (R, K) contiguous, b (K) -> out (R) = a @ b. All R rows share each load of b, and
// U accumulators per row (R * U >= 8 chains in flight) hide the FMA latency.
template <int R, int U>
inline void dot_rows(const float* a, int64_t K, const float* b, float* out) {
#ifdef ANVIL_GEMM_AVX2
  __m256 acc[R][U];
  for (int i = 0; i < R; i++)
    for (int u = 0; u < U; u++) acc[i][u] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 * U <= K; k += 8 * U) {
    __m256 bv[U];
    for (int u = 0; u < U; u++) bv[u] = _mm256_loadu_ps(b + k + 8 * u);
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
    for (int64_t kk = k; kk < K; kk++) t += a[i * K + kk] * b[kk];
    out[i] = t;
  }
#else
  for (int i = 0; i < R; i++) {
    float t = 0.0f;
    for (int64_t k = 0; k < K; k++) t += a[i * K + k] * b[k];
    out[i] = t;
  }
#endif
}

void gemm_small_m(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a_rows, const float* B,
                  int64_t ldb, bool accumulate, float* C, int64_t ldc) {
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
          const float* bj = B + j * ldb;
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
  // B stored (K, N): rows of C are sums of scaled rows of B; threads own column blocks.
  constexpr int64_t kCols = 256;
  const int64_t blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t blk = 0; blk < blocks; blk++) {
    const int64_t j0 = blk * kCols, w = std::min(kCols, N - j0);
    alignas(32) float acc[kSmallM][kCols] = {};
    for (int64_t k = 0; k < K; k++) {
      const float* bk = B + k * ldb + j0;
      for (int64_t i = 0; i < M; i++) {
        const float aik = a_rows[i * K + k];
        float* ac = acc[i];
#pragma omp simd
        for (int64_t j = 0; j < w; j++) ac[j] += aik * bk[j];
      }
    }
    for (int64_t i = 0; i < M; i++) {
      float* c = C + i * ldc + j0;
      for (int64_t j = 0; j < w; j++) c[j] = accumulate ? c[j] + alpha * acc[i][j] : alpha * acc[i][j];
    }
  }
}

}  // namespace

// C (M, N) = alpha * op(A) @ op(B) + beta * C, all row-major with row strides lda, ldb, ldc
void sgemm_builtin_strided(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  // The kernel knows beta = 0 (C never read, so NaNs in it vanish, as in BLAS) and beta = 1;
  // any other beta scales C once up front.
  if (beta != 0.0f && beta != 1.0f) {
#pragma omp parallel for schedule(static) if (M * N >= (1 << 16))
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] *= beta;
    beta = 1.0f;
  }
  const bool accumulate = beta == 1.0f;
  if (K == 0) {  // empty sum: alpha * 0
    if (!accumulate)
      for (int64_t i = 0; i < M; i++) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  if (M <= kSmallM) {
    const float* rows = A;
    if (trans_a || lda != K) {  // gather op(A)'s rows contiguously (at most 8 * K floats)
      float* dst = a_scratch.get(static_cast<size_t>(M * K));
      for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) dst[i * K + k] = trans_a ? A[k * lda + i] : A[i * lda + k];
      rows = dst;
    }
    gemm_small_m(trans_b, M, N, K, alpha, rows, B, ldb, accumulate, C, ldc);
    return;
  }
  const int64_t m_panels = (M + MR - 1) / MR;
  const int64_t m_blocks = (M + MC - 1) / MC;
  // With a single block of rows each B micro-panel is used by one task only: pack it right
  // there, into a buffer that stays in L1, instead of a round trip through a shared buffer.
  // That is most of the cost when M is small (a B the size of a weight matrix, a few rows of A).
  const bool fuse_b = m_blocks == 1;
  constexpr int64_t fuse_b_capacity = NR * KC;
  float* Ap = a_scratch.get(static_cast<size_t>(m_panels * MR * KC));
  float* Bp = fuse_b ? nullptr : b_scratch.get(static_cast<size_t>((std::min(N, NC) + NR - 1) / NR * NR * KC));

  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  // Tiny problems are not worth waking the team.
  const bool parallel = threads > 1 && M * N * K >= 64 * 64 * 64;

  // Every phase is scheduled dynamically: on a shared machine one thread of the team is often
  // descheduled, and static shares would make the whole multiply wait for it at each barrier.
#pragma omp parallel if (parallel)
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t n_panels = (nc + NR - 1) / NR;
    // Column chunk per task: wide enough to reuse the A block from L2 several times, narrow
    // enough that there are a few tasks per thread to balance.
    int64_t chunk_panels = 16;
    while (chunk_panels > 1 && m_blocks * ((n_panels + chunk_panels - 1) / chunk_panels) < 4 * threads) chunk_panels /= 2;
    const int64_t n_chunks = (n_panels + chunk_panels - 1) / chunk_panels;

    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool load_c = accumulate || pc > 0;

      if (!fuse_b) {
#pragma omp for schedule(dynamic, 8) nowait
        for (int64_t q = 0; q < n_panels; q++)
          pack_b_panel(Bp + q * NR * kc, B, ldb, trans_b, jc + q * NR, std::min(NR, nc - q * NR), pc, kc);
      }
#pragma omp for schedule(dynamic, 8)
      for (int64_t p = 0; p < m_panels; p++)
        pack_a_panel(Ap + p * MR * kc, A, lda, trans_a, p * MR, std::min(MR, M - p * MR), pc, kc);

#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t mb = 0; mb < m_blocks; mb++)
        for (int64_t nb = 0; nb < n_chunks; nb++) {
          const int64_t p0 = mb * (MC / MR), p1 = std::min(m_panels, p0 + MC / MR);
          const int64_t q0 = nb * chunk_panels, q1 = std::min(n_panels, q0 + chunk_panels);
          alignas(64) float b_local[fuse_b_capacity];
          for (int64_t q = q0; q < q1; q++) {
            const int64_t j = jc + q * NR, nr = std::min(NR, N - j);
            const float* bq = b_local;
            if (fuse_b) pack_b_panel(b_local, B, ldb, trans_b, j, nr, pc, kc);
            else bq = Bp + q * NR * kc;
            for (int64_t p = p0; p < p1; p++) {
              const int64_t i = p * MR, mr = std::min(MR, M - i);
              micro_kernel(kc, Ap + p * MR * kc, bq, C + i * ldc + j, ldc, alpha, load_c, mr, nr);
            }
          }
        }
      // the implicit barrier above keeps Ap/Bp alive until every tile of this block is done
    }
  }
}

#ifdef ANVIL_HAVE_CBLAS
extern "C" void openblas_set_num_threads(int);
// One threading layer: OpenMP. Debian's default OpenBLAS runs its own pthreads, which spin
// after every call; next to our OpenMP team on the same cores, each small op then waits a
// scheduler quantum for a preempted thread (measured: a tiny-model SFT step 2.5 s -> 0.38 s
// with OpenBLAS held at 1 thread). So OpenBLAS stays single-threaded and sgemm splits rows
// across the OpenMP team itself.
static const bool blas_single_threaded = (openblas_set_num_threads(1), true);
#endif

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#ifdef ANVIL_HAVE_CBLAS
  (void)blas_single_threaded;
  if (M == 0 || N == 0) return;
  // Decode-sized products: OpenBLAS 0.3.21 runs them through its packed sgemm, several times
  // slower than streaming B once (gemm_small_m). K = 0: implementations differ; keep the contract.
  if (M <= kSmallM || K == 0) {
    sgemm_builtin_strided(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  for (int64_t d : {M, N, K, lda, ldb, ldc})
    if (d > INT_MAX) throw std::runtime_error("sgemm: dimension " + std::to_string(d) + " exceeds the BLAS int range");
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  // Row blocks of op(A) and C, one single-threaded BLAS call each (multiples of 16 rows).
  const int64_t parts = (threads > 1 && M * N * K >= (int64_t(1) << 21)) ? std::min<int64_t>(threads, (M + 15) / 16) : 1;
  const int64_t rows = ((M + parts - 1) / parts + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(static_cast<int>(parts)) if (parts > 1)
  for (int64_t p = 0; p < parts; p++) {
    const int64_t i0 = p * rows, m = std::min(rows, M - i0);
    if (m <= 0) continue;
    const float* Ap = trans_a ? A + i0 : A + i0 * lda;  // op(A) rows i0.. are A's columns when transposed
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(m), static_cast<int>(N), static_cast<int>(K), alpha, Ap, static_cast<int>(lda), B,
                static_cast<int>(ldb), beta, C + i0 * ldc, static_cast<int>(ldc));
  }
#else
  sgemm_builtin_strided(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void sgemm_builtin(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                   bool trans_b, bool accumulate, float alpha) {
  sgemm_builtin_strided(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N,
                        accumulate ? 1.0f : 0.0f, out, N);
}

void matmul(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha) {
  sgemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, accumulate ? 1.0f : 0.0f, out, N);
}

const char* matmul_backend_name() {
#ifdef ANVIL_HAVE_CBLAS
  return "OpenBLAS";
#else
  return "builtin";
#endif
}

}  // namespace anvil::cpu
