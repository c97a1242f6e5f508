// N-API glue for native/cpu/embedding.cpp.
#include "anvil/embedding.h"

#include <stdexcept>

#include "args.h"

ANVIL_EXPORT(embeddingForward) {
  auto N = anvil::integer(info, 3, "N"), C = anvil::integer(info, 4, "C"), V = anvil::integer(info, 5, "V");
  float* out = anvil::f32(info, 0, N * C, "out");
  const int32_t* ids = anvil::i32(info, 1, N, "ids");
  const float* table = anvil::f32(info, 2, V * C, "table");
  try {
    anvil::cpu::embedding_forward(out, ids, table, N, C, V);
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}

ANVIL_EXPORT(embeddingBackward) {
  auto N = anvil::integer(info, 3, "N"), C = anvil::integer(info, 4, "C"), V = anvil::integer(info, 5, "V");
  float* dtable = anvil::f32(info, 0, V * C, "dtable");
  const float* dout = anvil::f32(info, 1, N * C, "dout");
  const int32_t* ids = anvil::i32(info, 2, N, "ids");
  try {
    anvil::cpu::embedding_backward(dtable, dout, ids, N, C, V);
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}
