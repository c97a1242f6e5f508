// N-API glue for native/cpu/matmul.cpp: matmul (BLAS when built with it), matmulBuiltin (the
// built-in sgemm, for tests and benchmarks), and matmulAsync (matmul on a libuv worker).
//
// Arguments of all three: (out, a, b, M, N, K, transA, transB, accumulate, alpha).
#include <napi.h>

#include <string>

#include "anvil/matmul.h"
#include "args.h"

namespace {

struct MatmulArgs {
  float* out;
  const float* a;
  const float* b;
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

MatmulArgs parse(const Napi::CallbackInfo& info) {
  MatmulArgs m{};
  m.M = anvil::integer(info, 3, "M");
  m.N = anvil::integer(info, 4, "N");
  m.K = anvil::integer(info, 5, "K");
  m.trans_a = anvil::boolean(info, 6, "transA");
  m.trans_b = anvil::boolean(info, 7, "transB");
  m.accumulate = anvil::boolean(info, 8, "accumulate");
  m.alpha = static_cast<float>(anvil::num(info, 9, "alpha"));
  m.out = anvil::f32(info, 0, m.M * m.N, "out");
  m.a = anvil::f32(info, 1, m.M * m.K, "a");
  m.b = anvil::f32(info, 2, m.K * m.N, "b");
  if (m.M * m.N > 0 && (overlaps(info, 0, 1) || overlaps(info, 0, 2)))
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
      anvil::cpu::matmul(args_.out, args_.a, args_.b, args_.M, args_.N, args_.K, args_.trans_a, args_.trans_b,
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
  anvil::cpu::matmul(m.out, m.a, m.b, m.M, m.N, m.K, m.trans_a, m.trans_b, m.accumulate, m.alpha);
  return info.Env().Undefined();
}

// Same contract, always the built-in sgemm.
ANVIL_EXPORT(matmulBuiltin) {
  auto m = parse(info);
  anvil::cpu::sgemm_builtin(m.out, m.a, m.b, m.M, m.N, m.K, m.trans_a, m.trans_b, m.accumulate, m.alpha);
  return info.Env().Undefined();
}

// Same contract, returns a Promise; bad arguments reject it (TypeError / RangeError) too.
ANVIL_EXPORT(matmulAsync) {
  Napi::Env env = info.Env();
  MatmulArgs m;
  try {
    m = parse(info);
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
