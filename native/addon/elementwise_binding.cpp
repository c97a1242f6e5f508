// N-API glue for native/cpu/elementwise.cpp.
#include "anvil/elementwise.h"
#include "args.h"

ANVIL_EXPORT(add) {
  auto n = anvil::integer(info, 3, "n");
  float* out = anvil::f32(info, 0, n, "out");
  const float* a = anvil::f32(info, 1, n, "a");
  const float* b = anvil::f32(info, 2, n, "b");
  anvil::cpu::add(out, a, b, n);
  return info.Env().Undefined();
}

ANVIL_EXPORT(accumulate) {
  auto n = anvil::integer(info, 3, "n");
  float* dst = anvil::f32(info, 0, n, "dst");
  const float* src = anvil::f32(info, 1, n, "src");
  auto alpha = static_cast<float>(anvil::num(info, 2, "alpha"));
  anvil::cpu::accumulate(dst, src, alpha, n);
  return info.Env().Undefined();
}

ANVIL_EXPORT(scale) {
  auto n = anvil::integer(info, 2, "n");
  float* t = anvil::f32(info, 0, n, "t");
  auto alpha = static_cast<float>(anvil::num(info, 1, "alpha"));
  anvil::cpu::scale(t, alpha, n);
  return info.Env().Undefined();
}

ANVIL_EXPORT(sumSquares) {
  auto n = anvil::integer(info, 2, "n");
  float* out = anvil::f32(info, 0, 1, "out");
  const float* t = anvil::f32(info, 1, n, "t");
  out[0] = static_cast<float>(out[0] + anvil::cpu::sum_squares(t, n));
  return info.Env().Undefined();
}
