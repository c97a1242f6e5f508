// The packed sgemm driver shared by the built-in kernels (sgemm_avx2.cpp, sgemm_avx512.cpp).
// Private to native/cpu: it is instantiated once per instruction set, with a Kernel that brings
// its micro-tile (MR x NR), its blocking (KC, MC, NC) and its micro-kernel.
//
// BLIS/GotoBLAS structure:
//   for jc in N step NC:                 B block  (KC, NC) packed into NR-wide panels  (L3)
//     for pc in K step KC:               A        (M, KC)  packed into MR-tall panels  (L2 per MC)
//       parallel over (MC rows) x (column chunk) tiles:
//         for jr in chunk step NR:       one B micro-panel (KC, NR) stays in L1
//           for ir in MC step MR:        one A micro-panel (MR, KC) streams from L2
//             MR x NR micro-kernel
// Packing absorbs the transposes, so the kernel sees one layout. Edge tiles are zero-padded
// in the packed buffers. When all rows fit one MC block, each task packs its B micro-panels
// itself, straight into L1.
//
// This header must be included before any `#pragma GCC target`: the driver and the packing are
// compiled for the baseline ISA in every file; only the Kernel's functions use wider vectors.
// Instantiations take a Kernel from an anonymous namespace, so they have internal linkage and
// the linker can never pick an AVX-512 copy for a caller on a CPU without it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace anvil::cpu::gemm {

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
template <int64_t MR>
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

#if defined(__AVX2__) && defined(__FMA__)
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
template <int64_t NR>
void pack_b_panel(float* dst, const float* b, int64_t ldb, bool trans_b, int64_t j0, int64_t nr, int64_t p0,
                  int64_t kc) {
  if (trans_b) {  // b stored (N, K): read each column of op(b) contiguously
#if defined(__AVX2__) && defined(__FMA__)
    if (nr == NR) {  // full panel: 8x8 register transposes, the common case for weight matrices
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8)
        for (int64_t c0 = 0; c0 < NR; c0 += 8) transpose8x8(b + (j0 + c0) * ldb + p0 + k, ldb, dst + k * NR + c0, NR);
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
  } else {  // b stored (K, N): NR contiguous floats per k
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

// C (M, N) = alpha * op(A) @ op(B) (+ C when accumulate), row-major with row strides; M, N, K > 0.
// Kernel: MR, NR, KC, MC, NC and
//   static void micro(int64_t kc, const float* A, const float* B, float* C, int64_t ldc, float alpha,
//                     bool load_c, int64_t mr, int64_t nr);   // A (kc, MR), B (kc, NR) packed
template <class Kernel>
void packed_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  constexpr int64_t MR = Kernel::MR, NR = Kernel::NR, KC = Kernel::KC, MC = Kernel::MC, NC = Kernel::NC;
  static_assert(MC % MR == 0, "MC must be a multiple of MR");
  static thread_local Scratch a_scratch, b_scratch;
  const int64_t m_panels = (M + MR - 1) / MR;
  const int64_t m_blocks = (M + MC - 1) / MC;
  // With a single block of rows each B micro-panel is used by one task only: pack it right
  // there, into a buffer that stays in L1, instead of a round trip through a shared buffer.
  // That is most of the cost when M is small (a B the size of a weight matrix, a few rows of A).
  const bool fuse_b = m_blocks == 1;
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
          pack_b_panel<NR>(Bp + q * NR * kc, B, ldb, trans_b, jc + q * NR, std::min(NR, nc - q * NR), pc, kc);
      }
#pragma omp for schedule(dynamic, 8)
      for (int64_t p = 0; p < m_panels; p++)
        pack_a_panel<MR>(Ap + p * MR * kc, A, lda, trans_a, p * MR, std::min(MR, M - p * MR), pc, kc);

#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t mb = 0; mb < m_blocks; mb++)
        for (int64_t nb = 0; nb < n_chunks; nb++) {
          const int64_t p0 = mb * (MC / MR), p1 = std::min(m_panels, p0 + MC / MR);
          const int64_t q0 = nb * chunk_panels, q1 = std::min(n_panels, q0 + chunk_panels);
          alignas(64) float b_local[NR * KC];
          for (int64_t q = q0; q < q1; q++) {
            const int64_t j = jc + q * NR, nr = std::min(NR, N - j);
            const float* bq = b_local;
            if (fuse_b) pack_b_panel<NR>(b_local, B, ldb, trans_b, j, nr, pc, kc);
            else bq = Bp + q * NR * kc;
            for (int64_t p = p0; p < p1; p++) {
              const int64_t i = p * MR, mr = std::min(MR, M - i);
              Kernel::micro(kc, Ap + p * MR * kc, bq, C + i * ldc + j, ldc, alpha, load_c, mr, nr);
            }
          }
        }
      // the implicit barrier above keeps Ap/Bp alive until every tile of this block is done
    }
  }
}

}  // namespace anvil::cpu::gemm
