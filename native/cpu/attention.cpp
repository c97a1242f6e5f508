// Causal GQA attention on the CPU, flash-attention style: the (T, T) probability matrix is
// never stored. Forward saves lse (log-sum-exp of each row's scaled scores); backward rebuilds
// P = exp(s - lse) and uses D = rowsum(dout * out) in place of the softmax Jacobian.
//
// Work unit: a block of RB = 8 query rows that read the same kv head of the same batch row
// (see Block). Scores, probabilities and their gradients for a block are kept column-major,
// P[j * 8 + r] (key j, row r), so that one AVX2 register holds key j for all 8 rows: the
// softmax is elementwise across registers, and the three products below are register-blocked
// FMA loops with no horizontal reductions:
//   scores8  S[j][r]  = sum_d XT[d][r] * K[j][d]      (QK^T, and dout V^T in backward)
//   wv8      O[r][d]  = sum_j W[j][r]  * V[j][d]      (PV, and dS K for dq)
//   wx8      Y[j][d] += sum_r W[j][r]  * X[r][d]      (dS^T Q for dk, P^T dout for dv)
// Every kernel has a portable fallback, and head dims that are not a multiple of 8 take a
// scalar tail.
//
// One-token decode steps take a row-major path of their own (attend_decode, below).
//
// Parallelism: forward and prefill over (b, kv head, block), largest blocks first; decode and
// backward over (b, kv head), so in backward the dk/dv rows of a kv head, summed over its nh/nkv
// query heads, have a single writer (race-free without atomics or per-head scratch).
#include "anvil/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "online_softmax.h"
#include "simd_math.h"
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ANVIL_ATTN_AVX2 1
#endif

namespace anvil {

namespace {

constexpr int RB = 8;  // query rows per block = floats per AVX2 register
constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

// ---- exp ---------------------------------------------------------------------------------

// P[j][r] = exp(P[j][r] - shift[r]) for j < ncols.
void exp_cols(float* P, int64_t ncols, const float shift[RB]) {
#ifdef ANVIL_ATTN_AVX2
  const __m256 s = _mm256_loadu_ps(shift);
  for (int64_t j = 0; j < ncols; ++j) _mm256_storeu_ps(P + j * RB, simd::exp(_mm256_sub_ps(_mm256_loadu_ps(P + j * RB), s)));
#else
  for (int64_t j = 0; j < ncols; ++j)
    for (int r = 0; r < RB; ++r) P[j * RB + r] = std::exp(P[j * RB + r] - shift[r]);
#endif
}

// ---- the three products ------------------------------------------------------------------

// S[j][r] = sum_d XT[d][r] * K[j][d], j < ncols. XT (hd, 8); K rows at stride ks.
void scores8(float* S, const float* XT, const float* K, int64_t ks, int64_t ncols, int64_t hd) {
  int64_t j = 0;
#ifdef ANVIL_ATTN_AVX2
  for (; j + 8 <= ncols; j += 8) {  // 8 keys: 9 loads (1 + 8 broadcasts) per 8 FMAs
    const float* k0 = K + j * ks;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int64_t d = 0; d < hd; ++d) {
      const __m256 x = _mm256_loadu_ps(XT + d * RB);
      a0 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + d), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + ks + d), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 2 * ks + d), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 3 * ks + d), a3);
      a4 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 4 * ks + d), a4);
      a5 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 5 * ks + d), a5);
      a6 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 6 * ks + d), a6);
      a7 = _mm256_fmadd_ps(x, _mm256_broadcast_ss(k0 + 7 * ks + d), a7);
    }
    float* s = S + j * RB;
    _mm256_storeu_ps(s, a0);
    _mm256_storeu_ps(s + 8, a1);
    _mm256_storeu_ps(s + 16, a2);
    _mm256_storeu_ps(s + 24, a3);
    _mm256_storeu_ps(s + 32, a4);
    _mm256_storeu_ps(s + 40, a5);
    _mm256_storeu_ps(s + 48, a6);
    _mm256_storeu_ps(s + 56, a7);
  }
  for (; j < ncols; ++j) {
    const float* kj = K + j * ks;
    __m256 a = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) a = _mm256_fmadd_ps(_mm256_loadu_ps(XT + d * RB), _mm256_broadcast_ss(kj + d), a);
    _mm256_storeu_ps(S + j * RB, a);
  }
#else
  for (; j < ncols; ++j) {
    const float* kj = K + j * ks;
    float a[RB] = {};
    for (int64_t d = 0; d < hd; ++d)
      for (int r = 0; r < RB; ++r) a[r] += XT[d * RB + r] * kj[d];
    std::memcpy(S + j * RB, a, sizeof a);
  }
#endif
}

// O[r][d] = sum_j W[j][r] * V[j][d] for the rows with O[r] != nullptr (overwritten).
void wv8(float* const O[RB], const float* W, const float* V, int64_t vs, int64_t ncols, int64_t hd) {
  for (int r0 = 0; r0 < RB; r0 += 4) {
    if (!O[r0] && !O[r0 + 1] && !O[r0 + 2] && !O[r0 + 3]) continue;
    const float* w = W + r0;
    int64_t d = 0;
#ifdef ANVIL_ATTN_AVX2
    for (; d + 16 <= hd; d += 16) {  // 4 rows x 16 dims in 8 registers: 6 loads per 8 FMAs
      __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (int64_t j = 0; j < ncols; ++j) {
        const float* vj = V + j * vs + d;
        const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
        const float* wj = w + j * RB;
        __m256 p = _mm256_broadcast_ss(wj);
        a00 = _mm256_fmadd_ps(p, v0, a00);
        a01 = _mm256_fmadd_ps(p, v1, a01);
        p = _mm256_broadcast_ss(wj + 1);
        a10 = _mm256_fmadd_ps(p, v0, a10);
        a11 = _mm256_fmadd_ps(p, v1, a11);
        p = _mm256_broadcast_ss(wj + 2);
        a20 = _mm256_fmadd_ps(p, v0, a20);
        a21 = _mm256_fmadd_ps(p, v1, a21);
        p = _mm256_broadcast_ss(wj + 3);
        a30 = _mm256_fmadd_ps(p, v0, a30);
        a31 = _mm256_fmadd_ps(p, v1, a31);
      }
      const __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int r = 0; r < 4; ++r)
        if (O[r0 + r]) {
          _mm256_storeu_ps(O[r0 + r] + d, acc[r][0]);
          _mm256_storeu_ps(O[r0 + r] + d + 8, acc[r][1]);
        }
    }
    for (; d + 8 <= hd; d += 8) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t j = 0; j < ncols; ++j) {
        const __m256 v0 = _mm256_loadu_ps(V + j * vs + d);
        const float* wj = w + j * RB;
        a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(wj), v0, a0);
        a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(wj + 1), v0, a1);
        a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(wj + 2), v0, a2);
        a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(wj + 3), v0, a3);
      }
      const __m256 acc[4] = {a0, a1, a2, a3};
      for (int r = 0; r < 4; ++r)
        if (O[r0 + r]) _mm256_storeu_ps(O[r0 + r] + d, acc[r]);
    }
#endif
    for (; d < hd; ++d) {
      float a[4] = {};
      for (int64_t j = 0; j < ncols; ++j)
        for (int r = 0; r < 4; ++r) a[r] += w[j * RB + r] * V[j * vs + d];
      for (int r = 0; r < 4; ++r)
        if (O[r0 + r]) O[r0 + r][d] = a[r];
    }
  }
}

// Y[j][d] += sum_r W[j][r] * X[r][d], j < ncols; Y rows at stride ys. X rows may be a zero row.
void wx8(float* Y, int64_t ys, const float* W, const float* const X[RB], int64_t ncols, int64_t hd) {
  int64_t j = 0;
#ifdef ANVIL_ATTN_AVX2
  for (; j + 4 <= ncols; j += 4) {  // 4 keys x 16 dims in 8 registers: 6 loads per 8 FMAs
    float* y0 = Y + j * ys;
    const float* w = W + j * RB;
    int64_t d = 0;
    for (; d + 16 <= hd; d += 16) {
      __m256 c00 = _mm256_loadu_ps(y0 + d), c01 = _mm256_loadu_ps(y0 + d + 8);
      __m256 c10 = _mm256_loadu_ps(y0 + ys + d), c11 = _mm256_loadu_ps(y0 + ys + d + 8);
      __m256 c20 = _mm256_loadu_ps(y0 + 2 * ys + d), c21 = _mm256_loadu_ps(y0 + 2 * ys + d + 8);
      __m256 c30 = _mm256_loadu_ps(y0 + 3 * ys + d), c31 = _mm256_loadu_ps(y0 + 3 * ys + d + 8);
      for (int r = 0; r < RB; ++r) {
        const __m256 x0 = _mm256_loadu_ps(X[r] + d), x1 = _mm256_loadu_ps(X[r] + d + 8);
        __m256 p = _mm256_broadcast_ss(w + r);
        c00 = _mm256_fmadd_ps(p, x0, c00);
        c01 = _mm256_fmadd_ps(p, x1, c01);
        p = _mm256_broadcast_ss(w + RB + r);
        c10 = _mm256_fmadd_ps(p, x0, c10);
        c11 = _mm256_fmadd_ps(p, x1, c11);
        p = _mm256_broadcast_ss(w + 2 * RB + r);
        c20 = _mm256_fmadd_ps(p, x0, c20);
        c21 = _mm256_fmadd_ps(p, x1, c21);
        p = _mm256_broadcast_ss(w + 3 * RB + r);
        c30 = _mm256_fmadd_ps(p, x0, c30);
        c31 = _mm256_fmadd_ps(p, x1, c31);
      }
      _mm256_storeu_ps(y0 + d, c00);
      _mm256_storeu_ps(y0 + d + 8, c01);
      _mm256_storeu_ps(y0 + ys + d, c10);
      _mm256_storeu_ps(y0 + ys + d + 8, c11);
      _mm256_storeu_ps(y0 + 2 * ys + d, c20);
      _mm256_storeu_ps(y0 + 2 * ys + d + 8, c21);
      _mm256_storeu_ps(y0 + 3 * ys + d, c30);
      _mm256_storeu_ps(y0 + 3 * ys + d + 8, c31);
    }
    for (; d + 8 <= hd; d += 8) {
      __m256 c0 = _mm256_loadu_ps(y0 + d), c1 = _mm256_loadu_ps(y0 + ys + d);
      __m256 c2 = _mm256_loadu_ps(y0 + 2 * ys + d), c3 = _mm256_loadu_ps(y0 + 3 * ys + d);
      for (int r = 0; r < RB; ++r) {
        const __m256 x = _mm256_loadu_ps(X[r] + d);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + r), x, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + RB + r), x, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 2 * RB + r), x, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 3 * RB + r), x, c3);
      }
      _mm256_storeu_ps(y0 + d, c0);
      _mm256_storeu_ps(y0 + ys + d, c1);
      _mm256_storeu_ps(y0 + 2 * ys + d, c2);
      _mm256_storeu_ps(y0 + 3 * ys + d, c3);
    }
    for (; d < hd; ++d)
      for (int c = 0; c < 4; ++c) {
        float a = y0[c * ys + d];
        for (int r = 0; r < RB; ++r) a += w[c * RB + r] * X[r][d];
        y0[c * ys + d] = a;
      }
  }
#endif
  for (; j < ncols; ++j) {
    float* yj = Y + j * ys;
    const float* w = W + j * RB;
    for (int r = 0; r < RB; ++r) {
      const float wr = w[r];
      const float* x = X[r];
      if (wr != 0.0f)
        for (int64_t d = 0; d < hd; ++d) yj[d] += wr * x[d];
    }
  }
}

// ---- blocks ------------------------------------------------------------------------------

// Up to RB query rows of one batch row that read the same kv head, from the enumeration
// idx = t * group + g (g = query head within the kv head's group): with GQA, the rows of one
// token share every key, so a decode step (Tq = 1) still fills group rows of a block.
struct Block {
  int64_t off[RB];   // element offset of row r in (B, Tq, nh, hd) tensors; -1 = padding row
  int64_t lse[RB];   // index of row r in lse (B, nh, Tq)
  int64_t last[RB];  // last key row r attends; -1 = padding row
  int64_t ncols;     // keys any row attends: max(last) + 1
  int64_t nfull;     // keys every row attends: min(last) + 1, 0 with padding rows (no masking below)
};

// Block blk of batch row b, kv head kvh. start: position of query 0 of each batch row (nullptr: 0).
Block make_block(const int32_t* start, int64_t b, int64_t kvh, int64_t blk, int64_t Tq, int64_t nh, int64_t group,
                 int64_t hd) {
  Block k;
  k.ncols = 0;
  k.nfull = std::numeric_limits<int64_t>::max();
  const int64_t p0 = start ? start[b] : 0;
  for (int r = 0; r < RB; ++r) {
    const int64_t idx = blk * RB + r;
    if (idx < Tq * group) {
      const int64_t t = idx / group, h = kvh * group + idx % group;
      k.off[r] = ((b * Tq + t) * nh + h) * hd;
      k.lse[r] = (b * nh + h) * Tq + t;
      k.last[r] = p0 + t;
    } else {
      k.off[r] = k.lse[r] = k.last[r] = -1;
    }
    k.ncols = std::max(k.ncols, k.last[r] + 1);
    k.nfull = std::min(k.nfull, k.last[r] + 1);
  }
  return k;
}

// XT[d][r] = X[r][d] * alpha for the block's rows (0 for padding rows).
void transpose_rows(float* XT, const float* X, const Block& bl, int64_t hd, float alpha) {
  for (int r = 0; r < RB; ++r) {
    const float* x = bl.off[r] >= 0 ? X + bl.off[r] : nullptr;
    for (int64_t d = 0; d < hd; ++d) XT[d * RB + r] = x ? x[d] * alpha : 0.0f;
  }
}

// Sets P[j][r] = value where key j is beyond row r's last key (only keys >= nfull can be).
void mask_cols(float* P, const Block& bl, float value) {
  for (int64_t j = std::min(bl.nfull, bl.ncols); j < bl.ncols; ++j)
    for (int r = 0; r < RB; ++r)
      if (j > bl.last[r]) P[j * RB + r] = value;
}

// Scaled scores in P -> probabilities. Forward (lse_in == nullptr): softmax per row, storing
// each row's log-sum-exp in lse_out. Backward: P = exp(S - lse_in).
void softmax_cols(float* P, const Block& bl, const float* lse_in, float* lse_out) {
  const int64_t n = bl.ncols;
  if (lse_in) {
    exp_cols(P, n, lse_in);
    mask_cols(P, bl, 0.0f);
    return;
  }
  mask_cols(P, bl, NEG_INF);
  float m[RB], sum[RB], inv[RB];
  std::fill(m, m + RB, NEG_INF);
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < RB; ++r) m[r] = std::max(m[r], P[j * RB + r]);
  for (int r = 0; r < RB; ++r)
    if (m[r] == NEG_INF) m[r] = 0.0f;  // padding row: keep exp finite, it is zeroed below
  exp_cols(P, n, m);
  mask_cols(P, bl, 0.0f);
  std::fill(sum, sum + RB, 0.0f);
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < RB; ++r) sum[r] += P[j * RB + r];
  for (int r = 0; r < RB; ++r) {
    inv[r] = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
    lse_out[r] = m[r] + std::log(sum[r]);
  }
  for (int64_t j = 0; j < n; ++j)
    for (int r = 0; r < RB; ++r) P[j * RB + r] *= inv[r];
}

// Forward over every block, in parallel: out (and lse when not null) for queries (B, Tq, nh, hd)
// against keys/values with S rows per batch row.
void attend(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* start, int64_t B,
            int64_t Tq, int64_t S, int64_t nh, int64_t nkv, int64_t hd) {
  const int64_t group = nh / nkv;
  const int64_t nblocks = (Tq * group + RB - 1) / RB;
  const int64_t tasks = B * nkv * nblocks;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t kvs = nkv * hd;  // row stride of k and v
  int64_t max_cols = 0;
  for (int64_t b = 0; b < B; ++b) max_cols = std::max<int64_t>(max_cols, (start ? start[b] : 0) + Tq);
#pragma omp parallel
  {
    std::vector<float> P(RB * std::max<int64_t>(max_cols, 1)), XT(RB * hd);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      // Last blocks (the most keys) first, so the dynamic schedule ends balanced.
      const int64_t blk = nblocks - 1 - task % nblocks, bk = task / nblocks, b = bk / nkv, kvh = bk % nkv;
      const Block bl = make_block(start, b, kvh, blk, Tq, nh, group, hd);
      const float* kb = k + (b * S * nkv + kvh) * hd;
      const float* vb = v + (b * S * nkv + kvh) * hd;
      transpose_rows(XT.data(), q, bl, hd, scale);
      scores8(P.data(), XT.data(), kb, kvs, bl.ncols, hd);
      float lse_rows[RB];
      softmax_cols(P.data(), bl, nullptr, lse_rows);
      float* O[RB];
      for (int r = 0; r < RB; ++r) O[r] = bl.off[r] >= 0 ? out + bl.off[r] : nullptr;
      wv8(O, P.data(), vb, kvs, bl.ncols, hd);  // P is normalised: this is the softmax average
      if (lse)
        for (int r = 0; r < RB; ++r)
          if (bl.off[r] >= 0) lse[bl.lse[r]] = lse_rows[r];
    }
  }
}

// ---- decode: one query token per batch row ----------------------------------------------
//
// With Tq = 1 a block holds only the nh / nkv query heads of one kv head (2 of its 8 rows for
// Qwen3's GQA), and the column-major kernels spend the rest of their lanes, and scalar softmax
// passes, on padding: decode ran at 8 GB/s of cache read. Here the rows of a kv head stay
// row-major instead: each key and value row is loaded once for all of them, scores are dot
// products (8 keys per horizontal reduction), and the softmax runs along the keys.

#ifdef ANVIL_ATTN_AVX2
// The 8 lane sums of a0..a7, in order.
inline __m256 hsum8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5, __m256 a6, __m256 a7) {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}
#endif

// S[j] = sum_d x[d] * K[j][d], j < n; K rows at stride ks.
void dot_keys(float* S, const float* x, const float* K, int64_t ks, int64_t n, int64_t hd) {
  int64_t j = 0;
#ifdef ANVIL_ATTN_AVX2
  const int64_t hd8 = hd & ~int64_t{7};
  for (; j + 8 <= n; j += 8) {
    const float* k0 = K + j * ks;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const float* pf = K + std::min(j + 16, n - 8) * ks;  // two blocks ahead: the loads are latency-bound
    for (int64_t d = 0; d < hd8; d += 8) {
      for (int i = 0; i < 8; ++i) _mm_prefetch(reinterpret_cast<const char*>(pf + i * ks + d), _MM_HINT_T0);
      const __m256 xv = _mm256_loadu_ps(x + d);
      a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + d), a0);
      a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + ks + d), a1);
      a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 2 * ks + d), a2);
      a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 3 * ks + d), a3);
      a4 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 4 * ks + d), a4);
      a5 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 5 * ks + d), a5);
      a6 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 6 * ks + d), a6);
      a7 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(k0 + 7 * ks + d), a7);
    }
    _mm256_storeu_ps(S + j, hsum8(a0, a1, a2, a3, a4, a5, a6, a7));
    for (int64_t d = hd8; d < hd; ++d)
      for (int i = 0; i < 8; ++i) S[j + i] += x[d] * k0[i * ks + d];
  }
#endif
  for (; j < n; ++j) {
    float a = 0.0f;
    for (int64_t d = 0; d < hd; ++d) a += x[d] * K[j * ks + d];
    S[j] = a;
  }
}

// P = exp(P - max) along the n keys, with the softmax kernels' exp; returns the sum.
float exp_row(float* P, int64_t n) {
  return cpu::softmax_kernels().exp_store(P, P, n, 1.0f, cpu::scaled_max(P, n, 1.0f));
}

// O[r][d] = scale[r] * sum_j P[r][j] * V[j][d] for rows r < nr (P rows at stride ps).
void weigh_values(float* const* O, const float* P, int64_t ps, const float* scale, int nr, const float* V, int64_t vs,
                  int64_t n, int64_t hd) {
  for (int r0 = 0; r0 < nr; r0 += 4) {
    const int m = std::min(4, nr - r0);
    const float* p[4];
    for (int r = 0; r < 4; ++r) p[r] = P + (r0 + std::min(r, m - 1)) * ps;  // short groups repeat a row
    int64_t d = 0;
#ifdef ANVIL_ATTN_AVX2
    for (; d + 16 <= hd; d += 16) {  // 4 rows x 16 dims in 8 registers
      __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
      for (int64_t j = 0; j < n; ++j) {
        const float* vj = V + j * vs + d;
        _mm_prefetch(reinterpret_cast<const char*>(V + std::min(j + 16, n - 1) * vs + d), _MM_HINT_T0);
        const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
        __m256 w = _mm256_broadcast_ss(p[0] + j);
        a00 = _mm256_fmadd_ps(w, v0, a00);
        a01 = _mm256_fmadd_ps(w, v1, a01);
        w = _mm256_broadcast_ss(p[1] + j);
        a10 = _mm256_fmadd_ps(w, v0, a10);
        a11 = _mm256_fmadd_ps(w, v1, a11);
        w = _mm256_broadcast_ss(p[2] + j);
        a20 = _mm256_fmadd_ps(w, v0, a20);
        a21 = _mm256_fmadd_ps(w, v1, a21);
        w = _mm256_broadcast_ss(p[3] + j);
        a30 = _mm256_fmadd_ps(w, v0, a30);
        a31 = _mm256_fmadd_ps(w, v1, a31);
      }
      const __m256 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int r = 0; r < m; ++r) {
        const __m256 sc = _mm256_set1_ps(scale[r0 + r]);
        _mm256_storeu_ps(O[r0 + r] + d, _mm256_mul_ps(acc[r][0], sc));
        _mm256_storeu_ps(O[r0 + r] + d + 8, _mm256_mul_ps(acc[r][1], sc));
      }
    }
#endif
    for (; d < hd; ++d)
      for (int r = 0; r < m; ++r) {
        float a = 0.0f;
        for (int64_t j = 0; j < n; ++j) a += p[r][j] * V[j * vs + d];
        O[r0 + r][d] = a * scale[r0 + r];
      }
  }
}

// attention_decode with Tq = 1: out and q (B, 1, nh, hd); batch row b attends keys 0 .. pos[b].
void attend_decode(float* out, const float* q, const float* k, const float* v, const int32_t* pos, int64_t B,
                   int64_t S, int64_t nh, int64_t nkv, int64_t hd) {
  const int64_t group = nh / nkv, kvs = nkv * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  int64_t max_cols = 1;
  for (int64_t b = 0; b < B; ++b) max_cols = std::max<int64_t>(max_cols, pos[b] + 1);
#pragma omp parallel
  {
    std::vector<float> P(group * max_cols), x(hd), inv(group);
    std::vector<float*> O(group);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * nkv; ++task) {
      const int64_t b = task / nkv, kvh = task % nkv, n = pos[b] + 1;
      const float* kb = k + (b * S * nkv + kvh) * hd;
      const float* vb = v + (b * S * nkv + kvh) * hd;
      for (int64_t r = 0; r < group; ++r) {
        const int64_t off = (b * nh + kvh * group + r) * hd;
        for (int64_t d = 0; d < hd; ++d) x[d] = q[off + d] * scale;
        dot_keys(P.data() + r * n, x.data(), kb, kvs, n, hd);
        inv[r] = 1.0f / exp_row(P.data() + r * n, n);
        O[r] = out + off;
      }
      weigh_values(O.data(), P.data(), n, inv.data(), static_cast<int>(group), vb, kvs, n, hd);
    }
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t nh, int64_t nkv, int64_t hd) {
  if (nkv <= 0 || nh % nkv != 0) throw std::invalid_argument("attention: nh must be a multiple of nkv");
  attend(out, lse, q, k, v, nullptr, B, T, T, nh, nkv, hd);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t nh,
                        int64_t nkv, int64_t hd) {
  if (nkv <= 0 || nh % nkv != 0) throw std::invalid_argument("attention: nh must be a multiple of nkv");
  const int64_t group = nh / nkv;
  const int64_t nblocks = (T * group + RB - 1) / RB;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t ks = nkv * hd;  // row stride of k, v, dk, dv
#pragma omp parallel
  {
    const int64_t cols = RB * std::max<int64_t>(T, 1);
    std::vector<float> P(cols), dS(cols), XT(RB * hd), DT(RB * hd), zero_row(hd, 0.0f);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < B * nkv; ++task) {
      const int64_t b = task / nkv, kvh = task % nkv;
      const float* kb = k + (b * T * nkv + kvh) * hd;
      const float* vb = v + (b * T * nkv + kvh) * hd;
      float* dkb = dk + (b * T * nkv + kvh) * hd;
      float* dvb = dv + (b * T * nkv + kvh) * hd;
      for (int64_t t = 0; t < T; ++t) {
        std::fill(dkb + t * ks, dkb + t * ks + hd, 0.0f);
        std::fill(dvb + t * ks, dvb + t * ks + hd, 0.0f);
      }
      for (int64_t blk = 0; blk < nblocks; ++blk) {
        const Block bl = make_block(nullptr, b, kvh, blk, T, nh, group, hd);
        const int64_t n = bl.ncols;
        // Padding rows read zero rows and get zero probabilities: they contribute nothing.
        const float *qr[RB], *dor[RB];
        float* dqr[RB];
        float lse_r[RB], D[RB];
        for (int r = 0; r < RB; ++r) {
          const bool real = bl.off[r] >= 0;
          qr[r] = real ? q + bl.off[r] : zero_row.data();
          dor[r] = real ? dout + bl.off[r] : zero_row.data();
          dqr[r] = real ? dq + bl.off[r] : nullptr;
          lse_r[r] = real ? lse[bl.lse[r]] : 0.0f;
          float s = 0.0f;
          for (int64_t d = 0; d < hd; ++d) s += dor[r][d] * (real ? out[bl.off[r] + d] : 0.0f);
          D[r] = s;  // rowsum(dout * out) = sum_j P dP: the softmax Jacobian's diagonal term
        }
        transpose_rows(XT.data(), q, bl, hd, scale);
        scores8(P.data(), XT.data(), kb, ks, n, hd);
        softmax_cols(P.data(), bl, lse_r, nullptr);  // P = exp(S - lse)
        transpose_rows(DT.data(), dout, bl, hd, 1.0f);
        scores8(dS.data(), DT.data(), vb, ks, n, hd);  // dP = dout V^T
        // dS = P (dP - D), times scale once here for both dq and dk.
        for (int64_t j = 0; j < n; ++j)
          for (int r = 0; r < RB; ++r) dS[j * RB + r] = P[j * RB + r] * (dS[j * RB + r] - D[r]) * scale;
        wv8(dqr, dS.data(), kb, ks, n, hd);             // dq = dS K (overwrites: one block per row)
        wx8(dkb, ks, dS.data(), qr, n, hd);             // dk += dS^T Q
        wx8(dvb, ks, P.data(), dor, n, hd);             // dv += P^T dout
      }
    }
  }
}

namespace {

// what: "writes" or "has queries at", for the message.
void check_cache_range(const int32_t* pos, int64_t B, int64_t Tq, int64_t S, const char* what) {
  for (int64_t b = 0; b < B; ++b) {
    if (pos[b] < 0 || pos[b] + Tq > S)
      throw std::out_of_range(std::string("batch row ") + std::to_string(b) + " " + what + " positions " +
                              std::to_string(pos[b]) + " .. " + std::to_string(pos[b] + Tq - 1) +
                              ", outside the cache of " + std::to_string(S) + " positions");
  }
}

}  // namespace

void attention_decode(float* out, const float* q, const float* kcache, const float* vcache, const int32_t* pos,
                      int64_t B, int64_t Tq, int64_t S, int64_t nh, int64_t nkv, int64_t hd) {
  if (nkv <= 0 || nh % nkv != 0) throw std::invalid_argument("attention: nh must be a multiple of nkv");
  check_cache_range(pos, B, Tq, S, "has queries at");
  if (Tq == 1)
    attend_decode(out, q, kcache, vcache, pos, B, S, nh, nkv, hd);
  else
    attend(out, nullptr, q, kcache, vcache, pos, B, Tq, S, nh, nkv, hd);
}

void kv_write(float* cache, const float* x, const int32_t* pos, int64_t B, int64_t Tq, int64_t S, int64_t nkv,
              int64_t hd) {
  check_cache_range(pos, B, Tq, S, "writes");
  const int64_t row = nkv * hd;  // one position of all kv heads: contiguous in both tensors
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(cache + (b * S + pos[b]) * row, x + b * Tq * row, sizeof(float) * Tq * row);
}

}  // namespace anvil
