// Causal GQA attention on the CPU, flash-attention style: the (T, T) probability matrix is
// never stored. Forward saves lse (log-sum-exp of each row's scaled scores); backward rebuilds
// P = exp(s - lse) row by row and uses D = rowsum(dout * out) instead of a softmax Jacobian.
//
// Work unit: a block of RB query rows that read the same kv head (see Block). The rows share
// every key/value load (one k_j load feeds RB dot products, one v_j load RB axpys), and every
// inner loop runs over hd, contiguous, so GCC vectorises it (omp simd for the reductions).
// Block rows may stop at different keys (the causal edge): `last[r]` is the last key row r
// attends, -1 for a padding row.
//
// Parallelism: forward and decode over (b, kv head, row block), largest blocks first; backward
// over (b, kv head), so the dk/dv rows of a kv head, summed over its nh/nkv query heads, have a
// single writer (race-free without atomics or per-head scratch).
#include "anvil/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace anvil {

namespace {

constexpr int RB = 4;  // query rows per block

// x[j] = exp(x[j] - shift), for arguments <= 0 (scores minus their max or their lse).
// exp dominates the non-FMA work, and glibc's expf does not vectorise without -ffast-math, so
// AVX2 builds use the Cephes expf polynomial (~2 ulp) eight lanes at a time. Arguments below
// -87 give ~1e-38 instead of 0, negligible next to the row maximum's exp(0) = 1.
void exp_shifted(float* x, int64_t n, float shift) {
  int64_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
  const __m256 vshift = _mm256_set1_ps(shift), lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), c1 = _mm256_set1_ps(0.693359375f),
               c2 = _mm256_set1_ps(-2.12194440e-4f), one = _mm256_set1_ps(1.0f);
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + j), vshift);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, c1, v);  // r = v - k ln2, in two parts for accuracy
    r = _mm256_fnmadd_ps(k, c2, r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    _mm256_storeu_ps(x + j, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
  }
#endif
  for (; j < n; ++j) x[j] = std::exp(x[j] - shift);
}

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

// s[r] = dot(x[r], y) for the RB rows of a block (rows are pointers; padding rows repeat row 0).
inline void dot_rows(float s[RB], const float* const x[RB], const float* y, int64_t hd) {
  const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
  for (int64_t d = 0; d < hd; ++d) {
    const float yd = y[d];
    a0 += x0[d] * yd;
    a1 += x1[d] * yd;
    a2 += x2[d] * yd;
    a3 += x3[d] * yd;
  }
  s[0] = a0;
  s[1] = a1;
  s[2] = a2;
  s[3] = a3;
}

// Scaled scores of a block against keys 0 .. ncols-1, turned into probabilities in place:
// p[r*ncols + j] = exp(scale * q_r.k_j - lse_r) for j <= last[r], else 0.
// With lse_in == nullptr, lse_r is computed here (the forward pass) and stored in lse_out.
void block_probs(float* p, const float* const qr[RB], const int64_t last[RB], int64_t ncols, const float* k,
                 int64_t kv_stride, int64_t hd, float scale, const float* lse_in, float* lse_out) {
  for (int64_t j = 0; j < ncols; ++j) {
    float s[RB];
    dot_rows(s, qr, k + j * kv_stride, hd);
    for (int r = 0; r < RB; ++r) p[r * ncols + j] = s[r] * scale;
  }
  for (int r = 0; r < RB; ++r) {
    float* pr = p + r * ncols;
    const int64_t n = last[r] + 1;  // attended keys, 0 for a padding row
    if (n > 0 && lse_in) {
      exp_shifted(pr, n, lse_in[r]);
    } else if (n > 0) {
      float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < n; ++j) m = std::max(m, pr[j]);
      exp_shifted(pr, n, m);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) sum += pr[j];
      lse_out[r] = m + std::log(sum);
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) pr[j] *= inv;
    }
    for (int64_t j = std::max<int64_t>(n, 0); j < ncols; ++j) pr[j] = 0.0f;
  }
}

// out_r = sum_j p[r][j] v_j for the block's rows (acc: RB*hd scratch).
void block_pv(float* const outr[RB], const float* p, int64_t ncols, const float* v, int64_t kv_stride, int64_t hd,
              float* acc) {
  std::fill(acc, acc + RB * hd, 0.0f);
  float *a0 = acc, *a1 = acc + hd, *a2 = acc + 2 * hd, *a3 = acc + 3 * hd;
  for (int64_t j = 0; j < ncols; ++j) {
    const float* vj = v + j * kv_stride;
    const float p0 = p[j], p1 = p[ncols + j], p2 = p[2 * ncols + j], p3 = p[3 * ncols + j];
#pragma omp simd
    for (int64_t d = 0; d < hd; ++d) {
      const float vd = vj[d];
      a0[d] += p0 * vd;
      a1[d] += p1 * vd;
      a2[d] += p2 * vd;
      a3[d] += p3 * vd;
    }
  }
  for (int r = 0; r < RB; ++r)
    if (outr[r]) std::memcpy(outr[r], acc + r * hd, sizeof(float) * hd);
}

// A block: up to RB query rows that read the same kv head of the same batch row, taken from
// the (t, g) enumeration r = t * group + g (g = head within the kv head's group). With GQA the
// rows of one token share every key, so a decode step (Tq = 1) still fills whole blocks.
struct Block {
  const float* q[RB];
  int64_t off[RB];   // element offset of row r in the (B, Tq, nh, hd) tensors, -1 = padding
  int64_t lse[RB];   // index of row r in lse (B, nh, Tq)
  int64_t last[RB];  // last key row r attends, -1 = padding
  int64_t ncols;     // keys touched by any row: max(last) + 1
  int nrows;
};

// Block blk of batch row b, kv head kvh. start: position of query 0 of each batch row (nullptr: 0).
Block make_block(const float* q, const int32_t* start, int64_t b, int64_t kvh, int64_t blk, int64_t Tq, int64_t nh,
                 int64_t group, int64_t hd) {
  Block k;
  k.ncols = 0;
  k.nrows = 0;
  const int64_t p0 = start ? start[b] : 0;
  for (int r = 0; r < RB; ++r) {
    const int64_t idx = blk * RB + r;
    if (idx < Tq * group) {
      const int64_t t = idx / group, h = kvh * group + idx % group;
      k.off[r] = ((b * Tq + t) * nh + h) * hd;
      k.lse[r] = (b * nh + h) * Tq + t;
      k.last[r] = p0 + t;
      k.q[r] = q + k.off[r];
      k.nrows = r + 1;
    } else {
      k.off[r] = k.lse[r] = k.last[r] = -1;
      k.q[r] = k.q[0];
    }
    k.ncols = std::max(k.ncols, k.last[r] + 1);
  }
  return k;
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
    std::vector<float> p(RB * std::max<int64_t>(max_cols, 1)), acc(RB * hd);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      // Last blocks (the most keys) first, so the dynamic schedule ends balanced.
      const int64_t blk = nblocks - 1 - task % nblocks, bk = task / nblocks, b = bk / nkv, kvh = bk % nkv;
      const Block bl = make_block(q, start, b, kvh, blk, Tq, nh, group, hd);
      const float* kb = k + (b * S * nkv + kvh) * hd;
      const float* vb = v + (b * S * nkv + kvh) * hd;
      float lse_rows[RB];
      float* outr[RB];
      for (int r = 0; r < RB; ++r) outr[r] = bl.off[r] >= 0 ? out + bl.off[r] : nullptr;
      block_probs(p.data(), bl.q, bl.last, bl.ncols, kb, kvs, hd, scale, nullptr, lse_rows);
      // p is normalised, so P V is already divided by the softmax denominator.
      block_pv(outr, p.data(), bl.ncols, vb, kvs, hd, acc.data());
      if (lse)
        for (int r = 0; r < bl.nrows; ++r) lse[bl.lse[r]] = lse_rows[r];
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
    std::vector<float> pbuf(RB * std::max<int64_t>(T, 1)), dqacc(RB * hd), zero_row(hd, 0.0f);
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
        const Block bl = make_block(q, nullptr, b, kvh, blk, T, nh, group, hd);
        const float* dor[RB];
        float lse_r[RB], D[RB];
        for (int r = 0; r < RB; ++r) {
          const bool real = bl.off[r] >= 0;
          // Padding rows read zeros as dout, and their p is 0: they contribute nothing.
          dor[r] = real ? dout + bl.off[r] : zero_row.data();
          lse_r[r] = real ? lse[bl.lse[r]] : 0.0f;
          D[r] = real ? dot(dout + bl.off[r], out + bl.off[r], hd) : 0.0f;
        }
        const int64_t ncols = bl.ncols;
        float* p = pbuf.data();
        block_probs(p, bl.q, bl.last, ncols, kb, ks, hd, scale, lse_r, nullptr);

        std::fill(dqacc.begin(), dqacc.end(), 0.0f);
        float *g0 = dqacc.data(), *g1 = g0 + hd, *g2 = g0 + 2 * hd, *g3 = g0 + 3 * hd;
        const float *q0 = bl.q[0], *q1 = bl.q[1], *q2 = bl.q[2], *q3 = bl.q[3];
        const float *o0 = dor[0], *o1 = dor[1], *o2 = dor[2], *o3 = dor[3];
        for (int64_t j = 0; j < ncols; ++j) {
          const float* kj = kb + j * ks;
          float* dkj = dkb + j * ks;
          float* dvj = dvb + j * ks;
          float dp[RB];
          dot_rows(dp, dor, vb + j * ks, hd);
          const float p0 = p[j], p1 = p[ncols + j], p2 = p[2 * ncols + j], p3 = p[3 * ncols + j];
          // ds = p * (dp - D): gradient of the scaled score; times scale for q and k.
          const float s0 = p0 * (dp[0] - D[0]), s1 = p1 * (dp[1] - D[1]);
          const float s2 = p2 * (dp[2] - D[2]), s3 = p3 * (dp[3] - D[3]);
          const float k0 = s0 * scale, k1 = s1 * scale, k2 = s2 * scale, k3 = s3 * scale;
#pragma omp simd
          for (int64_t d = 0; d < hd; ++d) {
            const float kd = kj[d];
            g0[d] += s0 * kd;
            g1[d] += s1 * kd;
            g2[d] += s2 * kd;
            g3[d] += s3 * kd;
            dkj[d] += k0 * q0[d] + k1 * q1[d] + k2 * q2[d] + k3 * q3[d];
            dvj[d] += p0 * o0[d] + p1 * o1[d] + p2 * o2[d] + p3 * o3[d];
          }
        }
        for (int r = 0; r < bl.nrows; ++r) {
          float* dqr = dq + bl.off[r];
          const float* g = dqacc.data() + r * hd;
          for (int64_t d = 0; d < hd; ++d) dqr[d] = g[d] * scale;
        }
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
