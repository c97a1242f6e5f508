// N-API glue for native/cpu/linear_grpo_loss.cpp. dweight may be null (a frozen head); the
// weight's dtype code (0 f32, 1 bf16 as a Uint16Array of bits) comes after the loss options.
#include "anvil/linear_grpo_loss.h"
#include "args.h"
#include "grpo_options.h"

ANVIL_EXPORT(linearGrpoLoss) {
  auto H = anvil::integer(info, 13, "H", 1), V = anvil::integer(info, 14, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 15, "temperature"));
  auto loss_scale = static_cast<float>(anvil::num(info, 16, "lossScale"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  const anvil::cpu::GrpoOptions o = anvil::grpo_options(info, 17);
  const int64_t N = o.B * o.T;
  float* dhidden = anvil::f32(info, 0, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 1, V * H, "dweight");
  float* stats = anvil::f32(info, 2, anvil::cpu::kGrpoStats, "stats");
  float* logprob = anvil::f32(info, 3, N, "logprob");
  float* entropy = anvil::f32(info, 4, N, "entropy");
  const float* hidden = anvil::f32(info, 5, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 6, V * H, "weight", 28);
  const int32_t* targets = anvil::i32(info, 7, N, "targets");
  const float* old_logprob = anvil::f32_opt(info, 8, N, "oldLogprob");
  const float* ref_logprob = anvil::f32_opt(info, 9, N, "refLogprob");
  const float* rollout_logprob = anvil::f32_opt(info, 10, N, "rolloutLogprob");
  const float* advantages = anvil::f32(info, 11, o.B, "advantages");
  const float* mask = anvil::f32(info, 12, N, "mask");
  if (weight.bf16)
    anvil::cpu::linear_grpo_loss(dhidden, dweight, stats, logprob, entropy, hidden, weight.bits(), targets, old_logprob,
                                 ref_logprob, rollout_logprob, advantages, mask, H, V, temperature, loss_scale, o);
  else
    anvil::cpu::linear_grpo_loss(dhidden, dweight, stats, logprob, entropy, hidden, weight.f32(), targets, old_logprob,
                                 ref_logprob, rollout_logprob, advantages, mask, H, V, temperature, loss_scale, o);
  return info.Env().Undefined();
}
