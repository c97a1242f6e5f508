// logprob, oldLogprob, refLogprob?, rolloutLogprob?, entropy?, mask (B, T), advantages (B)
// -> dlogprob (B, T), dentropy (B, T), stats (11). Semantics: see anvil/grpo_loss.h.
// Three light passes: mask sums per sequence (the aggregation denominators); the float
// exponentials of every token (ratio, importance weight) on 8 lanes at a time, most of the cost
// of a scalar loop; then one fused pass that writes both gradients and reduces the loss and
// stats. Token math in float, sums in double (k3's exp too: e + d - 1 cancels for small d).
#include "anvil/grpo_loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "simd_math.h"

namespace anvil::cpu {

namespace {

// out[i] = exp(a[i] - b[i])
void exp_diff(float* out, const float* a, const float* b, int64_t n) {
  int64_t i = 0;
#ifdef ANVIL_SIMD_EXP
#pragma omp parallel for schedule(static) if (n >= (1 << 18))
  for (int64_t j = 0; j < n / 8; j++)
    _mm256_storeu_ps(out + 8 * j, simd::exp(_mm256_sub_ps(_mm256_loadu_ps(a + 8 * j), _mm256_loadu_ps(b + 8 * j))));
  i = n / 8 * 8;
#endif
  for (; i < n; i++) out[i] = std::exp(a[i] - b[i]);
}

}  // namespace

void grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* old_logprob,
               const float* ref_logprob, const float* rollout_logprob, const float* entropy, const float* advantages,
               const float* mask, const GrpoOptions& o) {
  const int64_t B = o.B, T = o.T;
  if (B < 0 || T < 0) throw std::invalid_argument("B and T must be >= 0");
  if (o.beta != 0 && !ref_logprob) throw std::invalid_argument("refLogprob is required when beta != 0");
  if (o.tis_cap != 0 && !rollout_logprob) throw std::invalid_argument("rolloutLogprob is required when tisCap != 0");
  if (o.entropy_coef != 0 && !entropy) throw std::invalid_argument("entropy is required when entropyCoef != 0");
  if (o.dual_clip != 0 && !(o.dual_clip > 1)) throw std::invalid_argument("dualClip must be 0 (off) or > 1");
  if (o.aggregation == LossAggregation::dr_grpo && o.max_completion_length < 1)
    throw std::invalid_argument("maxCompletionLength must be >= 1 for dr-grpo");

  std::vector<double> seq_mass(B, 0.0);
  double total_mass = 0.0;
  int64_t nonempty = 0;
  for (int64_t b = 0; b < B; b++) {
    double s = 0.0;
    for (int64_t t = 0; t < T; t++) s += mask[b * T + t];
    seq_mass[b] = s;
    total_mass += s;
    nonempty += s > 0;
  }

  // the ratio exp(lp - old) and the importance weight exp(old - rollout)
  const int64_t N = B * T;
  std::vector<float> ratio(N), e_tis(o.tis_cap > 0 ? N : 0);
  exp_diff(ratio.data(), logprob, old_logprob, N);
  if (!e_tis.empty()) exp_diff(e_tis.data(), old_logprob, rollout_logprob, N);

  const double lo = 1.0 - o.eps_low, hi = 1.0 + o.eps_high, c = o.dual_clip;
  double loss = 0, pg_loss = 0, kl_sum = 0, ent_sum = 0, clip_low = 0, clip_high = 0, dual = 0, r_sum = 0;
  double r_min = std::numeric_limits<double>::infinity(), r_max = -std::numeric_limits<double>::infinity();

// Small batches are cheaper on one thread than waking the team.
#pragma omp parallel for schedule(static) if (B * T >= 16384) reduction(+ : loss, pg_loss, kl_sum, ent_sum, clip_low, \
                                                                        clip_high, dual, r_sum) reduction(min : r_min) reduction(max : r_max)
  for (int64_t b = 0; b < B; b++) {
    double denom = 0;
    switch (o.aggregation) {
      case LossAggregation::token_mean: denom = total_mass; break;
      case LossAggregation::seq_mean_token_mean: denom = seq_mass[b] * static_cast<double>(nonempty); break;
      case LossAggregation::seq_mean_token_sum: denom = static_cast<double>(nonempty); break;
      case LossAggregation::dr_grpo: denom = static_cast<double>(B) * static_cast<double>(o.max_completion_length); break;
    }
    const double A = advantages[b];
    for (int64_t t = 0; t < T; t++) {
      const int64_t i = b * T + t;
      const double m = mask[i];
      if (m == 0.0 || denom == 0.0) {
        dlogprob[i] = 0.0f;
        dentropy[i] = 0.0f;
        continue;
      }
      const double wt = m / denom;
      const float lp = logprob[i];
      const float r = ratio[i];

      // PPO clipped objective and its derivative in lp (0 where a clip binds).
      const bool low = A < 0 && r < lo, high = A > 0 && r > hi;
      const bool dual_binds = c > 1 && A < 0 && r > c;
      double pg, dpg;
      if (low || high) {
        pg = std::clamp(static_cast<double>(r), lo, hi) * A;
        dpg = 0;
      } else if (dual_binds) {
        pg = c * A;
        dpg = 0;
      } else {
        pg = r * A;
        dpg = r * A;
      }
      const double w = o.tis_cap > 0 ? std::min(static_cast<double>(e_tis[i]), o.tis_cap) : 1.0;
      const double tok_pg = -w * pg;

      double kl = 0, dkl = 0;
      if (ref_logprob) {
        const float d = lp - ref_logprob[i];
        switch (o.kl) {
          case KlEstimator::k1: kl = d; dkl = 1; break;
          case KlEstimator::k2: kl = 0.5 * d * d; dkl = d; break;
          case KlEstimator::k3: {
            const double e = std::exp(-d);
            kl = e + d - 1;
            dkl = 1 - e;
            break;
          }
        }
      }
      const double h = entropy ? entropy[i] : 0.0;
      const double tok = tok_pg + o.beta * kl - o.entropy_coef * h;

      dlogprob[i] = static_cast<float>(wt * (-w * dpg + o.beta * dkl));
      dentropy[i] = static_cast<float>(wt * -o.entropy_coef);
      loss += wt * tok;
      pg_loss += wt * tok_pg;
      kl_sum += m * kl;
      ent_sum += m * h;
      clip_low += m * low;
      clip_high += m * high;
      dual += m * dual_binds;
      r_sum += m * r;
      if (m > 0) {
        r_min = std::min(r_min, static_cast<double>(r));
        r_max = std::max(r_max, static_cast<double>(r));
      }
    }
  }

  const bool any = total_mass > 0;
  const double inv = any ? 1.0 / total_mass : 0.0;
  const double out[kGrpoStats] = {
      loss, pg_loss, kl_sum * inv, ent_sum * inv, clip_low * inv, clip_high * inv, dual * inv,
      any ? r_min : 0.0, any ? r_max : 0.0, r_sum * inv, total_mass,
  };
  for (int k = 0; k < kGrpoStats; k++) stats[k] = static_cast<float>(out[k]);
}

}  // namespace anvil::cpu
