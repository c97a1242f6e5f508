// N-API glue for native/cpu/linear_logprob.cpp. Both take the weight's dtype code last (0 f32,
// 1 bf16 as a Uint16Array of bits); the backward's dweight may be null (no weight gradient).
#include "anvil/linear_logprob.h"
#include "args.h"

ANVIL_EXPORT(linearLogprobForward) {
  auto N = anvil::integer(info, 6, "N"), H = anvil::integer(info, 7, "H", 1), V = anvil::integer(info, 8, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 9, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  float* lse = anvil::f32(info, 2, N, "lse");
  const float* hidden = anvil::f32(info, 3, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 4, V * H, "weight", 10);
  const int32_t* targets = anvil::i32(info, 5, N, "targets");
  if (weight.bf16)
    anvil::cpu::linear_logprob_forward(logprob, entropy, lse, hidden, weight.bits(), targets, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_forward(logprob, entropy, lse, hidden, weight.f32(), targets, N, H, V, temperature);
  return info.Env().Undefined();
}

ANVIL_EXPORT(linearLogprobBackward) {
  auto N = anvil::integer(info, 9, "N"), H = anvil::integer(info, 10, "H", 1), V = anvil::integer(info, 11, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 12, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* dhidden = anvil::f32(info, 0, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 1, V * H, "dweight");
  const float* dlogprob = anvil::f32(info, 2, N, "dlogprob");
  const float* dentropy = anvil::f32(info, 3, N, "dentropy");
  const float* hidden = anvil::f32(info, 4, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 5, V * H, "weight", 13);
  const int32_t* targets = anvil::i32(info, 6, N, "targets");
  const float* lse = anvil::f32(info, 7, N, "lse");
  const float* entropy = anvil::f32(info, 8, N, "entropy");
  if (weight.bf16)
    anvil::cpu::linear_logprob_backward(dhidden, dweight, dlogprob, dentropy, hidden, weight.bits(), targets, lse,
                                        entropy, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_backward(dhidden, dweight, dlogprob, dentropy, hidden, weight.f32(), targets, lse,
                                        entropy, N, H, V, temperature);
  return info.Env().Undefined();
}

// One pass: (logprob, entropy, dhidden, dweight?, hidden, weight, targets, dlogprob, dentropy,
// N, H, V, temperature, weightDtype)
ANVIL_EXPORT(linearLogprobForwardBackward) {
  auto N = anvil::integer(info, 9, "N"), H = anvil::integer(info, 10, "H", 1), V = anvil::integer(info, 11, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 12, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  float* dhidden = anvil::f32(info, 2, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 3, V * H, "dweight");
  const float* hidden = anvil::f32(info, 4, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 5, V * H, "weight", 13);
  const int32_t* targets = anvil::i32(info, 6, N, "targets");
  const float* dlogprob = anvil::f32(info, 7, N, "dlogprob");
  const float* dentropy = anvil::f32(info, 8, N, "dentropy");
  if (weight.bf16)
    anvil::cpu::linear_logprob_forward_backward(logprob, entropy, dhidden, dweight, hidden, weight.bits(), targets,
                                                dlogprob, dentropy, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_forward_backward(logprob, entropy, dhidden, dweight, hidden, weight.f32(), targets,
                                                dlogprob, dentropy, N, H, V, temperature);
  return info.Env().Undefined();
}
