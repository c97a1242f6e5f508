// The GRPO loss of one token, its gradient and the batch statistics, written once for the two
// ops that need them: grpo_loss.cpp (per-token log-probs in memory) and linear_grpo_loss.cpp
// (log-probs made from the LM head block by block, the gradient consumed at once). Semantics:
// anvil/grpo_loss.h. Private to native/cpu.
//
// What makes a one-pass fused op possible: a token's gradient depends only on its own inputs
// and on aggregation weights that the mask alone fixes (GrpoWeights), never on other tokens'
// log-probs. Token math in float inputs, sums in double (k3's exp too: e + d - 1 cancels).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "anvil/grpo_loss.h"
#include "simd_math.h"

namespace anvil::cpu {

inline void check_grpo_options(const GrpoOptions& o, bool has_ref, bool has_rollout, bool has_entropy) {
  if (o.B < 0 || o.T < 0) throw std::invalid_argument("B and T must be >= 0");
  if (o.beta != 0 && !has_ref) throw std::invalid_argument("refLogprob is required when beta != 0");
  if (o.tis_cap != 0 && !has_rollout) throw std::invalid_argument("rolloutLogprob is required when tisCap != 0");
  if (o.entropy_coef != 0 && !has_entropy) throw std::invalid_argument("entropy is required when entropyCoef != 0");
  if (o.dual_clip != 0 && !(o.dual_clip > 1)) throw std::invalid_argument("dualClip must be 0 (off) or > 1");
  if (o.aggregation == LossAggregation::dr_grpo && o.max_completion_length < 1)
    throw std::invalid_argument("maxCompletionLength must be >= 1 for dr-grpo");
}

// out[i] = exp(a[i] - b[i]). Every element goes through the same 8-lane exp (the tail too, on
// a padded vector), so a value does not depend on where it sits in the array: the fused op,
// which sees a token block at a time, gets the ratios grpo_loss gets.
inline void exp_diff(float* out, const float* a, const float* b, int64_t n) {
#ifdef ANVIL_SIMD_EXP
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
  for (int64_t j = 0; j < n / 8; j++)
    _mm256_storeu_ps(out + 8 * j, simd::exp(_mm256_sub_ps(_mm256_loadu_ps(a + 8 * j), _mm256_loadu_ps(b + 8 * j))));
  const int64_t i0 = n / 8 * 8;
  if (i0 < n) {
    alignas(32) float d[8] = {};
    for (int64_t i = i0; i < n; i++) d[i - i0] = a[i] - b[i];
    _mm256_store_ps(d, simd::exp(_mm256_load_ps(d)));
    for (int64_t i = i0; i < n; i++) out[i] = d[i - i0];
  }
#else
  for (int64_t i = 0; i < n; i++) out[i] = std::exp(a[i] - b[i]);
#endif
}

// The aggregation weight of every token, m / denominator, from the mask alone.
class GrpoWeights {
 public:
  GrpoWeights(const float* mask, const GrpoOptions& o) : o_(o), seq_mass_(o.B, 0.0) {
    // Sums in double from several running sums: one chain of dependent adds is latency-bound
    // (a tenth of grpo_loss). A 0/1 mask sums exactly in any order.
    for (int64_t b = 0; b < o.B; b++) {
      const float* m = mask + b * o.T;
      int64_t t = 0;
      double s = 0.0;
#ifdef ANVIL_SIMD_EXP
      __m256d p0 = _mm256_setzero_pd(), p1 = p0, p2 = p0, p3 = p0;
      for (; t + 16 <= o.T; t += 16) {
        p0 = _mm256_add_pd(p0, _mm256_cvtps_pd(_mm_loadu_ps(m + t)));
        p1 = _mm256_add_pd(p1, _mm256_cvtps_pd(_mm_loadu_ps(m + t + 4)));
        p2 = _mm256_add_pd(p2, _mm256_cvtps_pd(_mm_loadu_ps(m + t + 8)));
        p3 = _mm256_add_pd(p3, _mm256_cvtps_pd(_mm_loadu_ps(m + t + 12)));
      }
      s = simd::hsum(_mm256_add_pd(_mm256_add_pd(p0, p1), _mm256_add_pd(p2, p3)));
#endif
      double p[4] = {0.0, 0.0, 0.0, 0.0};
      for (; t + 4 <= o.T; t += 4)
        for (int k = 0; k < 4; k++) p[k] += m[t + k];
      for (; t < o.T; t++) p[0] += m[t];
      s += (p[0] + p[1]) + (p[2] + p[3]);
      seq_mass_[b] = s;
      total_mass_ += s;
      nonempty_ += s > 0;
    }
  }
  double total_mass() const { return total_mass_; }
  // 0 when the sequence's loss has an empty denominator (its tokens then get no gradient).
  double denominator(int64_t b) const {
    switch (o_.aggregation) {
      case LossAggregation::token_mean: return total_mass_;
      case LossAggregation::seq_mean_token_mean: return seq_mass_[b] * static_cast<double>(nonempty_);
      case LossAggregation::seq_mean_token_sum: return static_cast<double>(nonempty_);
      case LossAggregation::dr_grpo: return static_cast<double>(o_.B) * static_cast<double>(o_.max_completion_length);
    }
    return 0.0;
  }

 private:
  const GrpoOptions& o_;
  std::vector<double> seq_mass_;
  double total_mass_ = 0.0;
  int64_t nonempty_ = 0;
};

// One token's loss terms and the (unweighted) derivatives of its loss in lp and H.
struct GrpoToken {
  double tok = 0, tok_pg = 0, kl = 0, dlogprob = 0, dentropy = 0;
  bool low = false, high = false, dual = false;
};

// lp: log-prob; r = exp(lp - old) (from exp_diff); e_tis = exp(old - rollout) (unused without
// a TIS cap); ref: reference log-prob or null; h: entropy (0 when absent); A: advantage.
inline GrpoToken grpo_token(const GrpoOptions& o, double A, float lp, float r, float e_tis, const float* ref, double h) {
  GrpoToken g;
  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high, c = o.dual_clip;
  // PPO clipped objective and its derivative in lp (0 where a clip binds).
  g.low = A < 0 && r < lo;
  g.high = A > 0 && r > hi;
  g.dual = c > 1 && A < 0 && r > c;
  double pg, dpg;
  if (g.low || g.high) {
    pg = std::clamp(static_cast<double>(r), lo, hi) * A;
    dpg = 0;
  } else if (g.dual) {
    pg = c * A;
    dpg = 0;
  } else {
    pg = r * A;
    dpg = r * A;
  }
  const double w = o.tis_cap > 0 ? std::min(static_cast<double>(e_tis), o.tis_cap) : 1.0;
  g.tok_pg = -w * pg;
  double dkl = 0;
  if (ref) {
    const float d = lp - *ref;
    switch (o.kl) {
      case KlEstimator::k1: g.kl = d; dkl = 1; break;
      case KlEstimator::k2: g.kl = 0.5 * d * d; dkl = d; break;
      case KlEstimator::k3: {
        const double e = std::exp(-d);
        g.kl = e + d - 1;
        dkl = 1 - e;
        break;
      }
    }
  }
  g.tok = g.tok_pg + o.beta * g.kl - o.entropy_coef * h;
  g.dlogprob = -w * dpg + o.beta * dkl;
  g.dentropy = -o.entropy_coef;
  return g;
}

// Batch statistics (GRPO_STATS order), summed token by token; merge() in a fixed order keeps
// them deterministic under threads.
struct GrpoStatsSum {
  double loss = 0, pg_loss = 0, kl = 0, ent = 0, clip_low = 0, clip_high = 0, dual = 0, r_sum = 0;
  double r_min = std::numeric_limits<double>::infinity(), r_max = -std::numeric_limits<double>::infinity();

  // m: mask value, wt: aggregation weight m / denominator.
  void add(const GrpoToken& g, double m, double wt, float r, double h) {
    loss += wt * g.tok;
    pg_loss += wt * g.tok_pg;
    kl += m * g.kl;
    ent += m * h;
    clip_low += m * g.low;
    clip_high += m * g.high;
    dual += m * g.dual;
    r_sum += m * r;
    if (m > 0) {
      r_min = std::min(r_min, static_cast<double>(r));
      r_max = std::max(r_max, static_cast<double>(r));
    }
  }
  void merge(const GrpoStatsSum& o) {
    loss += o.loss, pg_loss += o.pg_loss, kl += o.kl, ent += o.ent;
    clip_low += o.clip_low, clip_high += o.clip_high, dual += o.dual, r_sum += o.r_sum;
    r_min = std::min(r_min, o.r_min);
    r_max = std::max(r_max, o.r_max);
  }
  void write(float* stats, double total_mass) const {
    const bool any = total_mass > 0;
    const double inv = any ? 1.0 / total_mass : 0.0;
    const double out[kGrpoStats] = {
        loss, pg_loss, kl * inv, ent * inv, clip_low * inv, clip_high * inv, dual * inv,
        any ? r_min : 0.0, any ? r_max : 0.0, r_sum * inv, total_mass,
    };
    for (int k = 0; k < kGrpoStats; k++) stats[k] = static_cast<float>(out[k]);
  }
};

}  // namespace anvil::cpu
