// N-API glue for native/cpu/embedding.cpp. embeddingForward takes the table's dtype code last
// (0 f32, 1 bf16 as a Uint16Array of bits).
#include "anvil/embedding.h"

#include <stdexcept>

#include "args.h"

ANVIL_EXPORT(embeddingForward) {
  auto N = anvil::integer(info, 3, "N"), C = anvil::integer(info, 4, "C"), V = anvil::integer(info, 5, "V");
  float* out = anvil::f32(info, 0, N * C, "out");
  const int32_t* ids = anvil::i32(info, 1, N, "ids");
  const anvil::Weight table = anvil::weight(info, 2, V * C, "table", 6);
  try {
    if (table.bf16)
      anvil::cpu::embedding_forward(out, ids, table.bits(), N, C, V);
    else
      anvil::cpu::embedding_forward(out, ids, table.f32(), N, C, V);
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
