// N-API glue for native/cpu/sample.cpp.
#include "anvil/sample.h"
#include "args.h"

ANVIL_EXPORT(sample) {
  auto B = anvil::integer(info, 3, "B"), V = anvil::integer(info, 4, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 5, "temperature"));
  auto top_k = anvil::integer(info, 6, "topK");
  auto top_p = static_cast<float>(anvil::num(info, 7, "topP"));
  auto min_p = static_cast<float>(anvil::num(info, 8, "minP"));
  bool greedy = anvil::boolean(info, 9, "greedy");
  if (!(top_p > 0.0f && top_p <= 1.0f)) throw anvil::ArgError("topP must be in (0, 1]", true);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) throw anvil::ArgError("minP must be in [0, 1]", true);
  int32_t* ids = anvil::i32(info, 0, B, "ids");
  const float* logits = anvil::f32(info, 1, B * V, "logits");
  const uint32_t* seeds = anvil::u32(info, 2, B, "seeds");
  anvil::cpu::sample(ids, logits, seeds, B, V, temperature, top_k, top_p, min_p, greedy);
  return info.Env().Undefined();
}
