// N-API glue for native/cpu/adamw.cpp.
#include "anvil/adamw.h"
#include "args.h"

ANVIL_EXPORT(adamw) {
  auto n = anvil::integer(info, 4, "n");
  float* param = anvil::f32(info, 0, n, "param");
  const float* grad = anvil::f32(info, 1, n, "grad");
  float* m = anvil::f32(info, 2, n, "m");
  float* v = anvil::f32(info, 3, n, "v");
  double lr = anvil::num(info, 5, "lr");
  double beta1 = anvil::num(info, 6, "beta1");
  double beta2 = anvil::num(info, 7, "beta2");
  double eps = anvil::num(info, 8, "eps");
  double wd = anvil::num(info, 9, "weightDecay");
  auto step = anvil::integer(info, 10, "step", 1);
  anvil::cpu::adamw(param, grad, m, v, n, lr, beta1, beta2, eps, wd, step);
  return info.Env().Undefined();
}
