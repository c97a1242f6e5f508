// Causal GQA attention on the CPU, flash-attention style: the (T, T) probability matrix is
// never stored. Forward saves lse (log-sum-exp of each row's scaled scores); backward rebuilds
// P = exp(s - lse) row by row and uses D = rowsum(dout * out) instead of a softmax Jacobian.
//
// Work unit: a block of RB consecutive query rows of one head. The rows share every key/value
// load (one k_j load feeds RB dot products, one v_j load RB axpys), and every inner loop runs
// over hd, contiguous, so GCC vectorises it (omp simd for the dot-product reductions).
// Block rows may stop at different keys (the causal edge, or per-row cache lengths in decode):
// `last[r]` is the last key row r attends, -1 for a padding row.
//
// Parallelism: forward and decode over (b, h, row block), largest blocks first; backward over
// (b, kv head), so the dk/dv rows of a kv head, summed over its nh/nkv query heads, have a
// single writer (race-free without atomics or per-head scratch).
#include "anvil/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace anvil {

namespace {

constexpr int RB = 4;  // query rows per block

// exp(x) for x <= ~88, ~2 ulp (Cephes expf polynomial); written so that GCC vectorises it
// inside omp simd loops (glibc's expf does not vectorise without -ffast-math). Inputs below
// -87 give ~1e-38 instead of 0, which is harmless next to the row maximum's exp(0) = 1.
#pragma omp declare simd notinbranch
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return y * scale;
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
      const float lse = lse_in[r];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) pr[j] = exp_approx(pr[j] - lse);
    } else if (n > 0) {
      float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < n; ++j) m = std::max(m, pr[j]);
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; ++j) {
        pr[j] = exp_approx(pr[j] - m);
        sum += pr[j];
      }
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

// Per-thread scratch for attend_block.
struct BlockScratch {
  std::vector<float> p, acc;
  BlockScratch(int64_t max_cols, int64_t hd) : p(RB * std::max<int64_t>(max_cols, 1)), acc(RB * hd) {}
};

// Attends nrows (<= RB) query rows; q rows at q + r*q_stride, outputs likewise; lse optional.
void attend_block(float* out, float* lse, int64_t lse_stride, const float* q, int64_t q_stride, int nrows,
                  const int64_t* row_last, const float* k, const float* v, int64_t kv_stride, int64_t hd, float scale,
                  BlockScratch& sc) {
  const float* qr[RB];
  float* outr[RB];
  int64_t last[RB];
  int64_t ncols = 0;
  for (int r = 0; r < RB; ++r) {
    const bool real = r < nrows;
    qr[r] = q + (real ? r : 0) * q_stride;
    outr[r] = real ? out + r * q_stride : nullptr;
    last[r] = real ? row_last[r] : -1;
    ncols = std::max(ncols, last[r] + 1);
  }
  float lse_rows[RB];
  block_probs(sc.p.data(), qr, last, ncols, k, kv_stride, hd, scale, nullptr, lse_rows);
  block_pv(outr, sc.p.data(), ncols, v, kv_stride, hd, sc.acc.data());
  for (int r = 0; r < nrows; ++r) {
    // p was normalised by exp(-lse), so out is already divided by the softmax denominator.
    if (lse) lse[r * lse_stride] = lse_rows[r];
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t nh, int64_t nkv, int64_t hd) {
  if (nkv <= 0 || nh % nkv != 0) throw std::invalid_argument("attention: nh must be a multiple of nkv");
  const int64_t group = nh / nkv;
  const int64_t nblocks = (T + RB - 1) / RB;
  const int64_t tasks = B * nh * nblocks;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
#pragma omp parallel
  {
    BlockScratch sc(T, hd);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      // Last blocks (the most keys) first, so the dynamic schedule ends balanced.
      const int64_t blk = nblocks - 1 - task % nblocks;
      const int64_t bh = task / nblocks, b = bh / nh, h = bh % nh, kvh = h / group;
      const int64_t i0 = blk * RB;
      const int nrows = static_cast<int>(std::min<int64_t>(RB, T - i0));
      int64_t last[RB];
      for (int r = 0; r < RB; ++r) last[r] = i0 + r;
      const int64_t qoff = ((b * T + i0) * nh + h) * hd;
      const int64_t kvoff = (b * T * nkv + kvh) * hd;
      attend_block(out + qoff, lse + (b * nh + h) * T + i0, 1, q + qoff, nh * hd, nrows, last, k + kvoff, v + kvoff,
                   nkv * hd, hd, scale, sc);
    }
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t nh,
                        int64_t nkv, int64_t hd) {
  if (nkv <= 0 || nh % nkv != 0) throw std::invalid_argument("attention: nh must be a multiple of nkv");
  const int64_t group = nh / nkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t qs = nh * hd, ks = nkv * hd;  // row strides
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
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        for (int64_t i0 = 0; i0 < T; i0 += RB) {
          const int nrows = static_cast<int>(std::min<int64_t>(RB, T - i0));
          const int64_t off = ((b * T + i0) * nh + h) * hd;
          const float *qr[RB], *dor[RB];
          int64_t last[RB];
          float lse_r[RB], D[RB];
          for (int r = 0; r < RB; ++r) {
            const bool real = r < nrows;
            qr[r] = q + off + (real ? r : 0) * qs;
            // Padding rows read zeros as dout so that their p and ds contribute nothing.
            dor[r] = real ? dout + off + r * qs : zero_row.data();
            last[r] = real ? i0 + r : -1;
            lse_r[r] = real ? lse[(b * nh + h) * T + i0 + r] : 0.0f;
            D[r] = real ? dot(dout + off + r * qs, out + off + r * qs, hd) : 0.0f;
          }
          const int64_t ncols = i0 + nrows;
          float* p = pbuf.data();
          block_probs(p, qr, last, ncols, kb, ks, hd, scale, lse_r, nullptr);

          std::fill(dqacc.begin(), dqacc.end(), 0.0f);
          float *g0 = dqacc.data(), *g1 = g0 + hd, *g2 = g0 + 2 * hd, *g3 = g0 + 3 * hd;
          const float *q0 = qr[0], *q1 = qr[1], *q2 = qr[2], *q3 = qr[3];
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
          for (int r = 0; r < nrows; ++r) {
            float* dqr = dq + off + r * qs;
            const float* g = dqacc.data() + r * hd;
            for (int64_t d = 0; d < hd; ++d) dqr[d] = g[d] * scale;
          }
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
  const int64_t group = nh / nkv;
  const int64_t nblocks = (Tq + RB - 1) / RB;
  const int64_t tasks = B * nh * nblocks;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  int64_t max_cols = 0;
  for (int64_t b = 0; b < B; ++b) max_cols = std::max<int64_t>(max_cols, pos[b] + Tq);
#pragma omp parallel
  {
    BlockScratch sc(max_cols, hd);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t blk = nblocks - 1 - task % nblocks;
      const int64_t bh = task / nblocks, b = bh / nh, h = bh % nh, kvh = h / group;
      const int64_t t0 = blk * RB;
      const int nrows = static_cast<int>(std::min<int64_t>(RB, Tq - t0));
      int64_t last[RB];
      for (int r = 0; r < RB; ++r) last[r] = pos[b] + t0 + r;
      const int64_t qoff = ((b * Tq + t0) * nh + h) * hd;
      const int64_t kvoff = (b * S * nkv + kvh) * hd;
      attend_block(out + qoff, nullptr, 0, q + qoff, nh * hd, nrows, last, kcache + kvoff, vcache + kvoff, nkv * hd,
                   hd, scale, sc);
    }
  }
}

void kv_write(float* cache, const float* x, const int32_t* pos, int64_t B, int64_t Tq, int64_t S, int64_t nkv,
              int64_t hd) {
  check_cache_range(pos, B, Tq, S, "writes");
  const int64_t row = nkv * hd;  // one position of all kv heads: contiguous in both tensors
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(cache + (b * S + pos[b]) * row, x + b * Tq * row, sizeof(float) * Tq * row);
}

}  // namespace anvil
