// logprob, oldLogprob, refLogprob?, rolloutLogprob?, entropy?, mask (B, T), advantages (B)
// -> dlogprob (B, T), dentropy (B, T), stats (11). Semantics: see anvil/grpo_loss.h; the
// per-token math is grpo_token.h, shared with linear_grpo_loss.cpp.
// Three light passes: mask sums per sequence (the aggregation denominators); the float
// exponentials of every token (ratio, importance weight) on 8 lanes at a time, most of the cost
// of a scalar loop; then one fused pass that writes both gradients and reduces the loss and
// stats.
#include "anvil/grpo_loss.h"

#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "grpo_token.h"

namespace anvil::cpu {

void grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* old_logprob,
               const float* ref_logprob, const float* rollout_logprob, const float* entropy, const float* advantages,
               const float* mask, const GrpoOptions& o) {
  check_grpo_options(o, ref_logprob, rollout_logprob, entropy);
  const int64_t B = o.B, T = o.T, N = B * T;
  const GrpoWeights weights(mask, o);

  // the ratio exp(lp - old) and the importance weight exp(old - rollout)
  std::vector<float> ratio(N), e_tis(o.tis_cap > 0 ? N : 0);
  exp_diff(ratio.data(), logprob, old_logprob, N);
  if (!e_tis.empty()) exp_diff(e_tis.data(), old_logprob, rollout_logprob, N);

  // Small batches are cheaper on one thread than waking the team. One partial sum per thread,
  // merged in thread order: the same stats from run to run.
  int nthreads = 1;
#ifdef _OPENMP
  if (N >= 16384) nthreads = omp_get_max_threads();
#endif
  std::vector<GrpoStatsSum> partial(nthreads);
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t b = 0; b < B; b++) {
#ifdef _OPENMP
    GrpoStatsSum& sum = partial[omp_get_thread_num()];
#else
    GrpoStatsSum& sum = partial[0];
#endif
    const double denom = weights.denominator(b);
    for (int64_t t = 0; t < T; t++) {
      const int64_t i = b * T + t;
      const double m = mask[i];
      if (m == 0.0 || denom == 0.0) {
        dlogprob[i] = 0.0f;
        dentropy[i] = 0.0f;
        continue;
      }
      const double wt = m / denom, h = entropy ? entropy[i] : 0.0;
      const GrpoToken g = grpo_token(o, advantages[b], logprob[i], ratio[i], e_tis.empty() ? 0.0f : e_tis[i],
                                     ref_logprob ? ref_logprob + i : nullptr, h);
      dlogprob[i] = static_cast<float>(wt * g.dlogprob);
      dentropy[i] = static_cast<float>(wt * g.dentropy);
      sum.add(g, m, wt, ratio[i], h);
    }
  }
  for (int k = 1; k < nthreads; k++) partial[0].merge(partial[k]);
  partial[0].write(stats, weights.total_mass());
}

}  // namespace anvil::cpu
