// N-API glue for native/cpu/grpo_loss.cpp.
#include "anvil/grpo_loss.h"
#include "args.h"

ANVIL_EXPORT(grpoLoss) {
  anvil::cpu::GrpoOptions o;
  o.B = anvil::integer(info, 10, "B");
  o.T = anvil::integer(info, 11, "T");
  o.eps_low = anvil::num(info, 12, "epsLow");
  o.eps_high = anvil::num(info, 13, "epsHigh");
  o.dual_clip = anvil::num(info, 14, "dualClip");
  o.beta = anvil::num(info, 15, "beta");
  auto kl = anvil::integer(info, 16, "kl");
  if (kl > 2) throw anvil::ArgError("kl must be 0 (k1), 1 (k2) or 2 (k3)", true);
  o.kl = static_cast<anvil::cpu::KlEstimator>(kl);
  o.entropy_coef = anvil::num(info, 17, "entropyCoef");
  o.tis_cap = anvil::num(info, 18, "tisCap");
  auto agg = anvil::integer(info, 19, "aggregation");
  if (agg > 3) throw anvil::ArgError("aggregation must be 0..3", true);
  o.aggregation = static_cast<anvil::cpu::LossAggregation>(agg);
  o.max_completion_length = anvil::integer(info, 20, "maxCompletionLength");
  if (!(o.eps_low >= 0 && o.eps_low < 1)) throw anvil::ArgError("epsLow must be in [0, 1)", true);
  if (!(o.eps_high >= 0)) throw anvil::ArgError("epsHigh must be >= 0", true);
  if (!(o.tis_cap >= 0)) throw anvil::ArgError("tisCap must be >= 0", true);

  const int64_t N = o.B * o.T;
  float* dlogprob = anvil::f32(info, 0, N, "dlogprob");
  float* dentropy = anvil::f32(info, 1, N, "dentropy");
  float* stats = anvil::f32(info, 2, anvil::cpu::kGrpoStats, "stats");
  const float* logprob = anvil::f32(info, 3, N, "logprob");
  const float* old_logprob = anvil::f32(info, 4, N, "oldLogprob");
  const float* ref_logprob = anvil::f32_opt(info, 5, N, "refLogprob");
  const float* rollout_logprob = anvil::f32_opt(info, 6, N, "rolloutLogprob");
  const float* entropy = anvil::f32_opt(info, 7, N, "entropy");
  const float* advantages = anvil::f32(info, 8, o.B, "advantages");
  const float* mask = anvil::f32(info, 9, N, "mask");
  anvil::cpu::grpo_loss(dlogprob, dentropy, stats, logprob, old_logprob, ref_logprob, rollout_logprob, entropy,
                        advantages, mask, o);
  return info.Env().Undefined();
}
