// N-API glue for native/cpu/attention.cpp. The TypeScript backend checks shapes first; these
// checks only guarantee no out-of-bounds access. Cache positions are data, not shapes, so
// they are checked here (the kernel throws std::out_of_range, surfaced as a RangeError).
#include <stdexcept>

#include "anvil/attention.h"
#include "args.h"

namespace {

void check_heads(int64_t nh, int64_t nkv) {
  if (nh % nkv != 0)
    throw anvil::ArgError("query heads nh=" + std::to_string(nh) + " must be a multiple of kv heads nkv=" +
                              std::to_string(nkv),
                          true);
}

// Runs fn, turning a cache range error into a RangeError.
template <typename F>
void range_checked(F&& fn) {
  try {
    fn();
  } catch (const std::out_of_range& e) {
    throw anvil::ArgError(e.what(), true);
  }
}

}  // namespace

// (out, lse, q, k, v, B, T, nh, nkv, hd)
ANVIL_EXPORT(attentionForward) {
  const int64_t B = anvil::integer(info, 5, "B"), T = anvil::integer(info, 6, "T");
  const int64_t nh = anvil::integer(info, 7, "nh", 1), nkv = anvil::integer(info, 8, "nkv", 1);
  const int64_t hd = anvil::integer(info, 9, "hd", 1);
  check_heads(nh, nkv);
  const size_t nq = B * T * nh * hd, nk = B * T * nkv * hd;
  float* out = anvil::f32(info, 0, nq, "out");
  float* lse = anvil::f32(info, 1, B * nh * T, "lse");
  const float* q = anvil::f32(info, 2, nq, "q");
  const float* k = anvil::f32(info, 3, nk, "k");
  const float* v = anvil::f32(info, 4, nk, "v");
  anvil::attention_forward(out, lse, q, k, v, B, T, nh, nkv, hd);
  return info.Env().Undefined();
}

// (dq, dk, dv, dout, q, k, v, out, lse, B, T, nh, nkv, hd)
ANVIL_EXPORT(attentionBackward) {
  const int64_t B = anvil::integer(info, 9, "B"), T = anvil::integer(info, 10, "T");
  const int64_t nh = anvil::integer(info, 11, "nh", 1), nkv = anvil::integer(info, 12, "nkv", 1);
  const int64_t hd = anvil::integer(info, 13, "hd", 1);
  check_heads(nh, nkv);
  const size_t nq = B * T * nh * hd, nk = B * T * nkv * hd;
  float* dq = anvil::f32(info, 0, nq, "dq");
  float* dk = anvil::f32(info, 1, nk, "dk");
  float* dv = anvil::f32(info, 2, nk, "dv");
  const float* dout = anvil::f32(info, 3, nq, "dout");
  const float* q = anvil::f32(info, 4, nq, "q");
  const float* k = anvil::f32(info, 5, nk, "k");
  const float* v = anvil::f32(info, 6, nk, "v");
  const float* out = anvil::f32(info, 7, nq, "out");
  const float* lse = anvil::f32(info, 8, B * nh * T, "lse");
  anvil::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, B, T, nh, nkv, hd);
  return info.Env().Undefined();
}

// (out, q, kCache, vCache, pos, B, Tq, S, nh, nkv, hd)
ANVIL_EXPORT(attentionDecode) {
  const int64_t B = anvil::integer(info, 5, "B"), Tq = anvil::integer(info, 6, "Tq");
  const int64_t S = anvil::integer(info, 7, "S");
  const int64_t nh = anvil::integer(info, 8, "nh", 1), nkv = anvil::integer(info, 9, "nkv", 1);
  const int64_t hd = anvil::integer(info, 10, "hd", 1);
  check_heads(nh, nkv);
  const size_t nq = B * Tq * nh * hd, nc = B * S * nkv * hd;
  float* out = anvil::f32(info, 0, nq, "out");
  const float* q = anvil::f32(info, 1, nq, "q");
  const float* kc = anvil::f32(info, 2, nc, "kCache");
  const float* vc = anvil::f32(info, 3, nc, "vCache");
  const int32_t* pos = anvil::i32(info, 4, B, "pos");
  range_checked([&] { anvil::attention_decode(out, q, kc, vc, pos, B, Tq, S, nh, nkv, hd); });
  return info.Env().Undefined();
}

// (cache, x, pos, B, Tq, S, nkv, hd)
ANVIL_EXPORT(kvWrite) {
  const int64_t B = anvil::integer(info, 3, "B"), Tq = anvil::integer(info, 4, "Tq");
  const int64_t S = anvil::integer(info, 5, "S");
  const int64_t nkv = anvil::integer(info, 6, "nkv", 1), hd = anvil::integer(info, 7, "hd", 1);
  float* cache = anvil::f32(info, 0, B * S * nkv * hd, "cache");
  const float* x = anvil::f32(info, 1, B * Tq * nkv * hd, "x");
  const int32_t* pos = anvil::i32(info, 2, B, "pos");
  range_checked([&] { anvil::kv_write(cache, x, pos, B, Tq, S, nkv, hd); });
  return info.Env().Undefined();
}
