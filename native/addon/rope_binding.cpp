// N-API glue for native/cpu/rope.cpp.
#include "anvil/rope.h"
#include "args.h"

namespace {

struct RopeArgs {
  float* out;
  const float* inp;
  const int32_t* pos;
  int64_t N, nh, hd;
  double theta;
};

// (out, inp, pos, N, nh, hd, theta); names differ for forward and backward only in messages.
RopeArgs rope_args(const Napi::CallbackInfo& info, const char* out_name, const char* inp_name) {
  RopeArgs a;
  a.N = anvil::integer(info, 3, "N");
  a.nh = anvil::integer(info, 4, "nh");
  a.hd = anvil::integer(info, 5, "hd", 2);
  if (a.hd % 2 != 0) throw anvil::ArgError("hd must be even, got " + std::to_string(a.hd), true);
  a.theta = anvil::num(info, 6, "theta");
  if (!(a.theta > 0)) throw anvil::ArgError("theta must be > 0", true);
  const size_t n = static_cast<size_t>(a.N * a.nh * a.hd);
  a.out = anvil::f32(info, 0, n, out_name);
  a.inp = anvil::f32(info, 1, n, inp_name);
  a.pos = anvil::i32(info, 2, static_cast<size_t>(a.N), "pos");
  return a;
}

}  // namespace

ANVIL_EXPORT(ropeForward) {
  auto a = rope_args(info, "out", "inp");
  anvil::rope_forward(a.out, a.inp, a.pos, a.N, a.nh, a.hd, a.theta);
  return info.Env().Undefined();
}

ANVIL_EXPORT(ropeBackward) {
  auto a = rope_args(info, "dinp", "dout");
  anvil::rope_backward(a.out, a.inp, a.pos, a.N, a.nh, a.hd, a.theta);
  return info.Env().Undefined();
}
