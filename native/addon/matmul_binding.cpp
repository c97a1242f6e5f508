// N-API glue for native/cpu/matmul.cpp: matmul (the selected sgemm candidate), matmulBuiltin
// (the built-in AVX2 sgemm), matmulWith (a named candidate, for tests, benchmarks and the
// selection timing), matmulAsync (matmul on a libuv worker), and the candidate selection
// (gemmCandidates, setGemm, gemmSelected).
//
// Arguments of the matmuls: ([name,] out, a, b, M, N, K, transA, transB, accumulate, alpha
// [, bDtype]); bDtype 1 = b is bf16 (a Uint16Array of bits; matmul and matmulWith only).
#include <napi.h>

#include <stdexcept>
#include <string>

#include "anvil/matmul.h"
#include "args.h"

namespace {

struct MatmulArgs {
  float* out;
  const float* a;
  anvil::Weight b;
  int64_t M, N, K;
  bool trans_a, trans_b, accumulate;
  float alpha;
};

// Byte ranges of two typed arrays overlap (the kernel would read what it already wrote).
bool overlaps(const Napi::CallbackInfo& info, size_t i, size_t j) {
  auto x = info[i].As<Napi::TypedArray>(), y = info[j].As<Napi::TypedArray>();
  auto* xb = static_cast<uint8_t*>(x.ArrayBuffer().Data()) + x.ByteOffset();
  auto* yb = static_cast<uint8_t*>(y.ArrayBuffer().Data()) + y.ByteOffset();
  return xb < yb + y.ByteLength() && yb < xb + x.ByteLength();
}

// Arguments from index `at` on (1 when a candidate name comes first).
MatmulArgs parse(const Napi::CallbackInfo& info, size_t at = 0) {
  MatmulArgs m{};
  m.M = anvil::integer(info, at + 3, "M");
  m.N = anvil::integer(info, at + 4, "N");
  m.K = anvil::integer(info, at + 5, "K");
  m.trans_a = anvil::boolean(info, at + 6, "transA");
  m.trans_b = anvil::boolean(info, at + 7, "transB");
  m.accumulate = anvil::boolean(info, at + 8, "accumulate");
  m.alpha = static_cast<float>(anvil::num(info, at + 9, "alpha"));
  m.out = anvil::f32(info, at + 0, m.M * m.N, "out");
  m.a = anvil::f32(info, at + 1, m.M * m.K, "a");
  m.b = anvil::weight(info, at + 2, m.K * m.N, "b", at + 10);
  if (m.M * m.N > 0 && (overlaps(info, at + 0, at + 1) || overlaps(info, at + 0, at + 2)))
    throw anvil::ArgError("out must not share memory with a or b", false);
  return m;
}

// Runs one matmul off the JS thread and settles a Promise. The three typed arrays are held
// by persistent references until the job is over, so GC cannot free them mid-multiply.
class MatmulWorker : public Napi::AsyncWorker {
 public:
  MatmulWorker(const Napi::CallbackInfo& info, const MatmulArgs& args)
      : Napi::AsyncWorker(info.Env(), "anvil.matmulAsync"), deferred_(Napi::Promise::Deferred::New(info.Env())), args_(args) {
    for (size_t i = 0; i < 3; i++) keep_[i] = Napi::Persistent(info[i].As<Napi::Object>());
  }
  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      anvil::cpu::matmul(args_.out, args_.a, args_.b.f32(), args_.M, args_.N, args_.K, args_.trans_a, args_.trans_b,
                         args_.accumulate, args_.alpha);
    } catch (const std::exception& e) {
      SetError(std::string("matmulAsync: ") + e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  MatmulArgs args_;
  Napi::ObjectReference keep_[3];
};

}  // namespace

// out (M, N) (+)= alpha * op(a) (M, K) @ op(b) (K, N)
ANVIL_EXPORT(matmul) {
  auto m = parse(info);
  if (m.b.bf16)
    anvil::cpu::matmul(m.out, m.a, m.b.bits(), m.M, m.N, m.K, m.trans_a, m.trans_b, m.accumulate, m.alpha);
  else
    anvil::cpu::matmul(m.out, m.a, m.b.f32(), m.M, m.N, m.K, m.trans_a, m.trans_b, m.accumulate, m.alpha);
  return info.Env().Undefined();
}

// Same contract, always the built-in sgemm.
ANVIL_EXPORT(matmulBuiltin) {
  auto m = parse(info);
  if (m.b.bf16) throw anvil::ArgError("matmulBuiltin: b must be f32", false);
  anvil::cpu::sgemm_builtin(m.out, m.a, m.b.f32(), m.M, m.N, m.K, m.trans_a, m.trans_b, m.accumulate, m.alpha);
  return info.Env().Undefined();
}

std::string candidate_name(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw anvil::ArgError("the sgemm candidate name must be a string", false);
  return info[0].As<Napi::String>().Utf8Value();
}

// Same contract, with the candidate named first ("openblas", "avx2", "avx512").
ANVIL_EXPORT(matmulWith) {
  const std::string name = candidate_name(info);
  auto m = parse(info, 1);
  const int64_t lda = m.trans_a ? m.M : m.K, ldb = m.trans_b ? m.K : m.N;
  try {
    if (m.b.bf16)
      anvil::cpu::sgemm_with(name, m.trans_a, m.trans_b, m.M, m.N, m.K, m.alpha, m.a, lda, m.b.bits(), ldb,
                             m.accumulate ? 1.0f : 0.0f, m.out, m.N);
    else
      anvil::cpu::sgemm_with(name, m.trans_a, m.trans_b, m.M, m.N, m.K, m.alpha, m.a, lda, m.b.f32(), ldb,
                             m.accumulate ? 1.0f : 0.0f, m.out, m.N);
  } catch (const std::invalid_argument& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}

// The candidates usable here, in a fixed order (openblas, avx2, avx512 when present).
ANVIL_EXPORT(gemmCandidates) {
  auto names = anvil::cpu::gemm_candidates();
  auto out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); i++) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

// Makes the named candidate the sgemm behind matmul and every fused op.
ANVIL_EXPORT(setGemm) {
  const std::string name = candidate_name(info);
  try {
    anvil::cpu::set_gemm(name);
  } catch (const std::invalid_argument& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}

ANVIL_EXPORT(gemmSelected) { return Napi::String::New(info.Env(), anvil::cpu::gemm_selected()); }

// Same contract, returns a Promise; bad arguments reject it (TypeError / RangeError) too.
ANVIL_EXPORT(matmulAsync) {
  Napi::Env env = info.Env();
  MatmulArgs m;
  try {
    m = parse(info);
    if (m.b.bf16) throw anvil::ArgError("b must be f32", false);
  } catch (const anvil::ArgError& e) {
    auto d = Napi::Promise::Deferred::New(env);
    std::string msg = std::string("matmulAsync: ") + e.what();
    d.Reject(e.range ? Napi::RangeError::New(env, msg).Value() : Napi::TypeError::New(env, msg).Value());
    return d.Promise();
  }
  auto* worker = new MatmulWorker(info, m);
  Napi::Promise p = worker->promise();
  worker->Queue();  // libuv owns it from here; it deletes itself after OnOK / OnError
  return p;
}
