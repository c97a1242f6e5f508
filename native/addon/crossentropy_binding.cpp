// N-API glue for native/cpu/crossentropy.cpp.
#include "anvil/crossentropy.h"

#include <stdexcept>

#include "args.h"

ANVIL_EXPORT(crossEntropyForward) {
  auto N = anvil::integer(info, 3, "N"), V = anvil::integer(info, 4, "V");
  float* loss = anvil::f32(info, 0, N, "loss");
  const float* logits = anvil::f32(info, 1, N * V, "logits");
  const int32_t* targets = anvil::i32(info, 2, N, "targets");
  try {
    anvil::cpu::cross_entropy_forward(loss, logits, targets, N, V);
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}

ANVIL_EXPORT(crossEntropyBackward) {
  auto N = anvil::integer(info, 4, "N"), V = anvil::integer(info, 5, "V");
  float* dlogits = anvil::f32(info, 0, N * V, "dlogits");
  const float* dloss = anvil::f32(info, 1, N, "dloss");
  const float* logits = anvil::f32(info, 2, N * V, "logits");
  const int32_t* targets = anvil::i32(info, 3, N, "targets");
  try {
    anvil::cpu::cross_entropy_backward(dlogits, dloss, logits, targets, N, V);
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}
