// N-API glue for native/cpu/gather.cpp.
#include "anvil/gather.h"

#include <stdexcept>

#include "args.h"

ANVIL_EXPORT(gatherRows) {
  auto M = anvil::integer(info, 3, "M"), N = anvil::integer(info, 4, "N"), C = anvil::integer(info, 5, "C");
  float* out = anvil::f32(info, 0, M * C, "out");
  const float* inp = anvil::f32(info, 1, N * C, "inp");
  const int32_t* idx = anvil::i32(info, 2, M, "idx");
  try {
    anvil::cpu::gather_rows(out, inp, idx, M, N, C);
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}
