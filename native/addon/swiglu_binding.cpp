// N-API glue for native/cpu/swiglu.cpp.
#include "anvil/swiglu.h"
#include "args.h"

ANVIL_EXPORT(swigluForward) {
  auto n = anvil::integer(info, 3, "n");
  float* out = anvil::f32(info, 0, n, "out");
  const float* gate = anvil::f32(info, 1, n, "gate");
  const float* up = anvil::f32(info, 2, n, "up");
  anvil::cpu::swiglu_forward(out, gate, up, n);
  return info.Env().Undefined();
}

ANVIL_EXPORT(swigluBackward) {
  auto n = anvil::integer(info, 5, "n");
  float* dgate = anvil::f32(info, 0, n, "dgate");
  float* dup = anvil::f32(info, 1, n, "dup");
  const float* dout = anvil::f32(info, 2, n, "dout");
  const float* gate = anvil::f32(info, 3, n, "gate");
  const float* up = anvil::f32(info, 4, n, "up");
  anvil::cpu::swiglu_backward(dgate, dup, dout, gate, up, n);
  return info.Env().Undefined();
}
