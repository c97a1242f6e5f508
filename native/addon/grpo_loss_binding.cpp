// N-API glue for native/cpu/grpo_loss.cpp.
#include "anvil/grpo_loss.h"
#include "args.h"
#include "grpo_options.h"

ANVIL_EXPORT(grpoLoss) {
  const anvil::cpu::GrpoOptions o = anvil::grpo_options(info, 10);
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
