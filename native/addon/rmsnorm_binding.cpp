// N-API glue for native/cpu/rmsnorm.cpp.
#include "anvil/rmsnorm.h"
#include "args.h"

ANVIL_EXPORT(rmsnormForward) {
  auto N = anvil::integer(info, 4, "N"), C = anvil::integer(info, 5, "C");
  auto eps = static_cast<float>(anvil::num(info, 6, "eps"));
  float* out = anvil::f32(info, 0, N * C, "out");
  float* rstd = anvil::f32(info, 1, N, "rstd");
  const float* inp = anvil::f32(info, 2, N * C, "inp");
  const float* weight = anvil::f32(info, 3, C, "weight");
  anvil::cpu::rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
  return info.Env().Undefined();
}

ANVIL_EXPORT(rmsnormBackward) {
  auto N = anvil::integer(info, 6, "N"), C = anvil::integer(info, 7, "C");
  float* dinp = anvil::f32(info, 0, N * C, "dinp");
  float* dweight = anvil::f32(info, 1, C, "dweight");
  const float* dout = anvil::f32(info, 2, N * C, "dout");
  const float* inp = anvil::f32(info, 3, N * C, "inp");
  const float* weight = anvil::f32(info, 4, C, "weight");
  const float* rstd = anvil::f32(info, 5, N, "rstd");
  anvil::cpu::rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N, C);
  return info.Env().Undefined();
}
