// The per-sequence loop of grpo_loss over an ISA's token lanes: an empty sequence gets zero
// gradients and no stats; whole vectors of W tokens, the float partial sums folded into double
// every `run` tokens; the tail on a padded vector (mask 0 beyond the sequence). Each ISA's file
// includes it where its own functions are compiled (grpo_loss_avx512.cpp inside its target
// region), so each gets its own instantiation. Private to native/cpu.
#pragma once
#include <algorithm>

#include "grpo_rows.h"

namespace anvil::cpu {

// lanes(dlp, dent, sums, o, lp, old, ref, roll, h, m, A, inv): W tokens of one sequence.
template <int W, class Sums, class Lanes>
GrpoStatsSum grpo_rows_loop(const GrpoRows& x, const GrpoWeights& weights, const GrpoOptions& o, int64_t b0, int64_t b1,
                            int64_t run, Lanes lanes) {
  const int64_t T = o.T;
  Sums sum;
  for (int64_t b = b0; b < b1; b++) {
    const int64_t i0 = b * T;
    const double denom = weights.denominator(b);
    if (denom == 0.0) {
      std::fill(x.dlogprob + i0, x.dlogprob + i0 + T, 0.0f);
      std::fill(x.dentropy + i0, x.dentropy + i0 + T, 0.0f);
      continue;
    }
    const float inv = static_cast<float>(1.0 / denom), A = x.advantages[b];
    const auto at = [](const float* p, int64_t i) { return p ? p + i : nullptr; };
    int64_t t = 0;
    for (; t + W <= T; t += W) {
      const int64_t i = i0 + t;
      lanes(x.dlogprob + i, x.dentropy + i, sum, o, x.logprob + i, x.old_logprob + i, at(x.ref_logprob, i),
            at(x.rollout_logprob, i), at(x.entropy, i), x.mask + i, A, inv);
      if (t % run == run - W) sum.fold();
    }
    if (t < T) {
      alignas(64) float in[6][W] = {}, g[2][W];
      const float* src[6] = {x.logprob, x.old_logprob, x.ref_logprob, x.rollout_logprob, x.entropy, x.mask};
      for (int k = 0; k < 6; k++)
        if (src[k]) std::copy(src[k] + i0 + t, src[k] + i0 + T, in[k]);
      lanes(g[0], g[1], sum, o, in[0], in[1], x.ref_logprob ? in[2] : nullptr, in[3], x.entropy ? in[4] : nullptr, in[5], A,
            inv);
      std::copy(g[0], g[0] + (T - t), x.dlogprob + i0 + t);
      std::copy(g[1], g[1] + (T - t), x.dentropy + i0 + t);
    }
    sum.fold();
  }
  return sum.total();
}

}  // namespace anvil::cpu
