// N-API glue for native/cpu/logprob_from_logits.cpp.
#include "anvil/logprob_from_logits.h"
#include "args.h"

ANVIL_EXPORT(logprobFromLogits) {
  auto N = anvil::integer(info, 4, "N"), V = anvil::integer(info, 5, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 6, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  const float* logits = anvil::f32(info, 2, N * V, "logits");
  const int32_t* targets = anvil::i32(info, 3, N, "targets");
  anvil::cpu::logprob_from_logits(logprob, entropy, logits, targets, N, V, temperature);
  return info.Env().Undefined();
}
