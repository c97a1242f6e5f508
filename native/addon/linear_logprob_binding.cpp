// N-API glue for native/cpu/linear_logprob.cpp. Both take the weight's dtype code last (0 f32,
// 1 bf16 as a Uint16Array of bits); the backward's dweight may be null (no weight gradient).
#include "anvil/linear_logprob.h"
#include "args.h"

ANVIL_EXPORT(linearLogprobForward) {
  auto N = anvil::integer(info, 6, "N"), H = anvil::integer(info, 7, "H", 1), V = anvil::integer(info, 8, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 9, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  float* lse = anvil::f32(info, 2, N, "lse");
  const float* hidden = anvil::f32(info, 3, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 4, V * H, "weight", 10);
  const int32_t* targets = anvil::i32(info, 5, N, "targets");
  if (weight.bf16)
    anvil::cpu::linear_logprob_forward(logprob, entropy, lse, hidden, weight.bits(), targets, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_forward(logprob, entropy, lse, hidden, weight.f32(), targets, N, H, V, temperature);
  return info.Env().Undefined();
}

ANVIL_EXPORT(linearLogprobBackward) {
  auto N = anvil::integer(info, 9, "N"), H = anvil::integer(info, 10, "H", 1), V = anvil::integer(info, 11, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 12, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* dhidden = anvil::f32(info, 0, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 1, V * H, "dweight");
  const float* dlogprob = anvil::f32(info, 2, N, "dlogprob");
  const float* dentropy = anvil::f32(info, 3, N, "dentropy");
  const float* hidden = anvil::f32(info, 4, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 5, V * H, "weight", 13);
  const int32_t* targets = anvil::i32(info, 6, N, "targets");
  const float* lse = anvil::f32(info, 7, N, "lse");
  const float* entropy = anvil::f32(info, 8, N, "entropy");
  if (weight.bf16)
    anvil::cpu::linear_logprob_backward(dhidden, dweight, dlogprob, dentropy, hidden, weight.bits(), targets, lse,
                                        entropy, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_backward(dhidden, dweight, dlogprob, dentropy, hidden, weight.f32(), targets, lse,
                                        entropy, N, H, V, temperature);
  return info.Env().Undefined();
}

// One pass: (logprob, entropy, dhidden, dweight?, hidden, weight, targets, dlogprob, dentropy,
// N, H, V, temperature, weightDtype)
ANVIL_EXPORT(linearLogprobForwardBackward) {
  auto N = anvil::integer(info, 9, "N"), H = anvil::integer(info, 10, "H", 1), V = anvil::integer(info, 11, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 12, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  float* dhidden = anvil::f32(info, 2, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 3, V * H, "dweight");
  const float* hidden = anvil::f32(info, 4, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 5, V * H, "weight", 13);
  const int32_t* targets = anvil::i32(info, 6, N, "targets");
  const float* dlogprob = anvil::f32(info, 7, N, "dlogprob");
  const float* dentropy = anvil::f32(info, 8, N, "dentropy");
  if (weight.bf16)
    anvil::cpu::linear_logprob_forward_backward(logprob, entropy, dhidden, dweight, hidden, weight.bits(), targets,
                                                dlogprob, dentropy, N, H, V, temperature);
  else
    anvil::cpu::linear_logprob_forward_backward(logprob, entropy, dhidden, dweight, hidden, weight.f32(), targets,
                                                dlogprob, dentropy, N, H, V, temperature);
  return info.Env().Undefined();
}

// (logprob, entropy, dhidden, dweight?, hidden, weight, targets, segment, groupOf, lossGrad, S,
// N, H, V, temperature, weightDtype) -> the segments' sums (Float64Array, S). lossGrad(segs
// Int32Array, sums Float64Array) returns d loss / d sum of each listed segment (an array of
// numbers). It runs on this thread between a block's forward and its gradient products; what it
// throws is rethrown here, after the op stops.
ANVIL_EXPORT(linearSequenceLoss) {
  auto S = anvil::integer(info, 10, "S"), N = anvil::integer(info, 11, "N");
  auto H = anvil::integer(info, 12, "H", 1), V = anvil::integer(info, 13, "V", 1);
  auto temperature = static_cast<float>(anvil::num(info, 14, "temperature"));
  if (!(temperature > 0)) throw anvil::ArgError("temperature must be > 0", true);
  float* logprob = anvil::f32(info, 0, N, "logprob");
  float* entropy = anvil::f32(info, 1, N, "entropy");
  float* dhidden = anvil::f32(info, 2, N * H, "dhidden");
  float* dweight = anvil::f32_opt(info, 3, V * H, "dweight");
  const float* hidden = anvil::f32(info, 4, N * H, "hidden");
  const anvil::Weight weight = anvil::weight(info, 5, V * H, "weight", 15);
  const int32_t* targets = anvil::i32(info, 6, N, "targets");
  const int32_t* segment = anvil::i32(info, 7, N, "segment");
  const int32_t* group_of = anvil::i32(info, 8, S, "groupOf");
  if (!info[9].IsFunction()) throw anvil::ArgError("lossGrad must be a function", false);
  const Napi::Env env = info.Env();
  const Napi::Function loss_grad = info[9].As<Napi::Function>();
  Napi::Value thrown;  // what lossGrad threw, or its bad return
  const anvil::cpu::SegmentGrad seg_grad = [&](const int32_t* segs, const double* sums, int64_t n, double* dsums) {
    try {
      auto js_segs = Napi::Int32Array::New(env, static_cast<size_t>(n));
      auto js_sums = Napi::Float64Array::New(env, static_cast<size_t>(n));
      std::copy(segs, segs + n, js_segs.Data());
      std::copy(sums, sums + n, js_sums.Data());
      const Napi::Value out = loss_grad.Call({js_segs, js_sums});
      const bool array_like = out.IsObject() && out.As<Napi::Object>().Get("length").IsNumber();
      if (!array_like || out.As<Napi::Object>().Get("length").As<Napi::Number>().Int64Value() != n)
        throw Napi::TypeError::New(env, "linearSequenceLoss: lossGrad must return " + std::to_string(n) +
                                            " numbers, one per segment it was given");
      const Napi::Object arr = out.As<Napi::Object>();
      for (int64_t k = 0; k < n; k++) {
        const Napi::Value v = arr.Get(static_cast<uint32_t>(k));
        if (!v.IsNumber()) throw Napi::TypeError::New(env, "linearSequenceLoss: lossGrad returned a non-number");
        dsums[k] = v.As<Napi::Number>().DoubleValue();
      }
      return true;
    } catch (const Napi::Error& e) {
      thrown = e.Value();
      return false;
    }
  };
  auto sums = Napi::Float64Array::New(env, static_cast<size_t>(S));
  const bool ok = weight.bf16 ? anvil::cpu::linear_sequence_loss(logprob, entropy, dhidden, dweight, sums.Data(), hidden, weight.bits(),
                                                                 targets, segment, group_of, S, N, H, V, temperature, seg_grad)
                              : anvil::cpu::linear_sequence_loss(logprob, entropy, dhidden, dweight, sums.Data(), hidden, weight.f32(),
                                                                 targets, segment, group_of, S, N, H, V, temperature, seg_grad);
  if (!ok) throw Napi::Error(env, thrown);
  return sums;
}
