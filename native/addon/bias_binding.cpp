// N-API glue for native/cpu/bias.cpp.
#include "anvil/bias.h"
#include "args.h"

ANVIL_EXPORT(biasAdd) {
  auto N = anvil::integer(info, 2, "N"), C = anvil::integer(info, 3, "C");
  float* out = anvil::f32(info, 0, N * C, "out");
  const float* bias = anvil::f32(info, 1, C, "bias");
  anvil::cpu::bias_add(out, bias, N, C);
  return info.Env().Undefined();
}

ANVIL_EXPORT(biasBackward) {
  auto N = anvil::integer(info, 2, "N"), C = anvil::integer(info, 3, "C");
  float* dbias = anvil::f32(info, 0, C, "dbias");
  const float* dout = anvil::f32(info, 1, N * C, "dout");
  anvil::cpu::bias_backward(dbias, dout, N, C);
  return info.Env().Undefined();
}
