// The packed sgemm driver shared by the built-in kernels (sgemm_avx2.cpp, sgemm_avx512.cpp).
// Private to native/cpu: it is instantiated once per instruction set, with a Kernel that brings
// its micro-tile (MR x NR), its blocking (KC, MC, NC) and its micro-kernel.
//
// BLIS/GotoBLAS structure, per thread (packed_sgemm cuts the product into parts for the team):
//   for jc in N step NC:                 B block  (KC, NC) packed into NR-wide panels  (L3)
//     for pc in K step KC:
//       for ic in M step MC:             A block  (MC, KC) packed into MR-tall panels  (L2)
//         for jr in NC step NR:          one B micro-panel (KC, NR) stays in L1
//           for ir in MC step MR:        one A micro-panel (MR, KC) streams from L2
//             MR x NR micro-kernel
// Packing absorbs the transposes, so the kernel sees one layout. Edge tiles are zero-padded
// in the packed buffers. When all rows fit one MC block, the B micro-panels are packed as they
// are used, straight into L1.
//
// B may be stored in bf16 (frozen weights, see bf16.h): its panels are widened to f32 while
// they are packed, so the same f32 micro-kernels run on them. A is always f32. A Kernel may
// bring its own `static void widen(float* dst, const bf16_t* src, int64_t n)` (wider vectors,
// compiled for its ISA) for the contiguous rows of a (K, N) B; else bf16.h's widen_row runs.
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
#include <type_traits>

#include "bf16.h"

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
// 8 rows r[0..7] of 8 floats -> dst (8 rows, stride ldd) transposed
inline void transpose8x8_regs(const __m256 (&r)[8], float* dst, int64_t ldd) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
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

// src (8 rows, stride lds; f32 or bf16) -> dst (8 rows, stride ldd) transposed, in f32
template <class TB>
inline void transpose8x8(const TB* src, int64_t lds, float* dst, int64_t ldd) {
  const __m256 r[8] = {load8_f32(src + 0 * lds), load8_f32(src + 1 * lds), load8_f32(src + 2 * lds),
                       load8_f32(src + 3 * lds), load8_f32(src + 4 * lds), load8_f32(src + 5 * lds),
                       load8_f32(src + 6 * lds), load8_f32(src + 7 * lds)};
  transpose8x8_regs(r, dst, ldd);
}
#endif

// Whether Kernel has its own bf16 -> f32 row conversion (Kernel::widen).
template <class Kernel, class = void>
struct HasWiden : std::false_type {};
template <class Kernel>
struct HasWiden<Kernel, std::void_t<decltype(&Kernel::widen)>> : std::true_type {};

// n contiguous elements of b as f32, with the Kernel's conversion when it has one.
template <class Kernel, class TB>
inline void widen_for(float* dst, const TB* src, int64_t n) {
  if constexpr (std::is_same_v<TB, bf16_t> && HasWiden<Kernel>::value)
    Kernel::widen(dst, src, n);
  else
    widen_row(dst, src, n);
}

// op(b)[p0 : p0+kc, j0 : j0+nr] -> dst (kc, NR) in f32, columns past nr zero-filled; ldb = row
// stride of b; TB = float or bf16_t (widened here)
template <int64_t NR, class Kernel, class TB>
void pack_b_panel(float* dst, const TB* b, int64_t ldb, bool trans_b, int64_t j0, int64_t nr, int64_t p0,
                  int64_t kc) {
  if (trans_b) {  // b stored (N, K): read each column of op(b) contiguously
#if defined(__AVX2__) && defined(__FMA__)
    if (nr == NR) {  // full panel: 8x8 register transposes, the common case for weight matrices
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8)
        for (int64_t c0 = 0; c0 < NR; c0 += 8) transpose8x8(b + (j0 + c0) * ldb + p0 + k, ldb, dst + k * NR + c0, NR);
      for (int64_t c = 0; c < NR; c++) {
        const TB* src = b + (j0 + c) * ldb + p0;
        for (int64_t kk = k; kk < kc; kk++) dst[kk * NR + c] = as_f32(src[kk]);
      }
      return;
    }
#endif
    for (int64_t c = 0; c < nr; c++) {
      const TB* src = b + (j0 + c) * ldb + p0;
      for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = as_f32(src[k]);
    }
    for (int64_t c = nr; c < NR; c++)
      for (int64_t k = 0; k < kc; k++) dst[k * NR + c] = 0.0f;
  } else {  // b stored (K, N): NR contiguous elements per k
    for (int64_t k = 0; k < kc; k++) {
      const TB* src = b + (p0 + k) * ldb + j0;
      float* d = dst + k * NR;
      if (nr == NR) {
        widen_for<Kernel>(d, src, NR);
      } else {
        for (int64_t c = 0; c < nr; c++) d[c] = as_f32(src[c]);
        for (int64_t c = nr; c < NR; c++) d[c] = 0.0f;
      }
    }
  }
}

// One thread's GEMM: C (M, N) = alpha * op(A) @ op(B) (+ C when accumulate), row-major with row
// strides; M, N, K > 0. Kernel: MR, NR, KC, MC, NC and
//   static void micro(int64_t kc, const float* A, const float* B, float* C, int64_t ldc, float alpha,
//                     bool load_c, int64_t mr, int64_t nr);   // A (kc, MR), B (kc, NR) packed
template <class Kernel, class TB = float>
void packed_sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const TB* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  constexpr int64_t MR = Kernel::MR, NR = Kernel::NR, KC = Kernel::KC, MC = Kernel::MC, NC = Kernel::NC;
  static_assert(MC % MR == 0, "MC must be a multiple of MR");
  static thread_local Scratch a_scratch, b_scratch;
  // With a single block of rows each B micro-panel is used once: pack it right there, into a
  // buffer that stays in L1, instead of a round trip through the packed block.
  const bool fuse_b = M <= MC;
  float* Ap = a_scratch.get(static_cast<size_t>(std::min(M, MC) + MR - 1) / MR * MR * KC);
  float* Bp = fuse_b ? nullptr : b_scratch.get(static_cast<size_t>((std::min(N, NC) + NR - 1) / NR * NR * KC));
  alignas(64) static thread_local float b_local[NR * KC];

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t n_panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const bool load_c = accumulate || pc > 0;
      if (!fuse_b)
        for (int64_t q = 0; q < n_panels; q++)
          pack_b_panel<NR, Kernel>(Bp + q * NR * kc, B, ldb, trans_b, jc + q * NR, std::min(NR, nc - q * NR), pc, kc);
      for (int64_t ic = 0; ic < M; ic += MC) {  // A block (MC, kc) stays in L2 across the B panels
        const int64_t mc = std::min(MC, M - ic), m_panels = (mc + MR - 1) / MR;
        for (int64_t p = 0; p < m_panels; p++)
          pack_a_panel<MR>(Ap + p * MR * kc, A, lda, trans_a, ic + p * MR, std::min(MR, mc - p * MR), pc, kc);
        for (int64_t q = 0; q < n_panels; q++) {
          const int64_t j = jc + q * NR, nr = std::min(NR, N - j);
          const float* bq = Bp + q * NR * kc;
          if (fuse_b) {
            pack_b_panel<NR, Kernel>(b_local, B, ldb, trans_b, j, nr, pc, kc);
            bq = b_local;
          }
          for (int64_t p = 0; p < m_panels; p++) {
            const int64_t i = ic + p * MR, mr = std::min(MR, M - i);
            Kernel::micro(kc, Ap + p * MR * kc, bq, C + i * ldc + j, ldc, alpha, load_c, mr, nr);
          }
        }
      }
    }
  }
}

// The same product on the OpenMP team: the larger of M and N is cut into parts, and each part
// is one packed_sgemm_serial with its own packing. No barrier inside a product, only the join
// at its end: on a machine shared with other processes a descheduled thread delays its own
// part, not every block of everyone's (a shared-packing design waits for it at each of its
// K / KC steps: 8 GFLOP/s instead of 30 measured on K = 32,000 here). Parts are scheduled
// dynamically, 4 per thread, so a thread that runs late takes fewer; the price is packing the
// operand that is not cut once per part (a few percent of the work).
template <class Kernel, class TB = float>
void packed_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const TB* B, int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  int threads = 1;
#ifdef _OPENMP
  if (!omp_in_parallel()) threads = omp_get_max_threads();
#endif
  const bool by_rows = M >= N;
  const int64_t extent = by_rows ? M : N, unit = by_rows ? Kernel::MR : Kernel::NR;
  constexpr int64_t kMinPart = 96;  // rows or columns: smaller parts pack more than they compute
  int64_t parts = std::min<int64_t>(4 * threads, extent / kMinPart);
  if (threads == 1 || parts < 2 || M * N * K < 64 * 64 * 64) {
    packed_sgemm_serial<Kernel, TB>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
    return;
  }
  const int64_t step = (extent / parts + unit - 1) / unit * unit;
  parts = (extent + step - 1) / step;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t p = 0; p < parts; p++) {
    const int64_t s0 = p * step, len = std::min(step, extent - s0);
    if (by_rows)  // op(A) rows s0.. are columns of A when it is stored transposed
      packed_sgemm_serial<Kernel, TB>(trans_a, trans_b, len, N, K, alpha, trans_a ? A + s0 : A + s0 * lda, lda, B, ldb,
                                  accumulate, C + s0 * ldc, ldc);
    else  // op(B) columns s0.. are rows of B when it is stored transposed
      packed_sgemm_serial<Kernel, TB>(trans_a, trans_b, M, len, K, alpha, A, lda, trans_b ? B + s0 * ldb : B + s0, ldb,
                                  accumulate, C + s0, ldc);
  }
}

}  // namespace anvil::cpu::gemm
