// CUDA ops for JavaScript, loaded lazily: libanvil_cuda.so (native/cuda, C ABI in
// anvil/cuda_api.h) is dlopen()ed from the directory holding this addon on the first call
// that needs it, so anvil.node loads and runs its CPU ops on machines without CUDA.
//
// Exports: cudaInfo() -> { built, loaded, devices, error, library, deviceNames }, the memory
// functions cuda_malloc/free/upload/download/copy/fill32/memset/sync/setDevice, and every op as
// cuda_<opName> with the CPU addon's argument order, tensors passed as device pointers
// (BigInt, or a safe-integer Number). TypeScript (src/backend/cuda.ts) validates shapes first.
#include <dlfcn.h>
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <string>
#include "anvil/cuda_api.h"
#include "args.h"
#include "cuda_library.h"

namespace {

struct CudaLibrary {
  bool tried = false;
  void* handle = nullptr;
  std::string path;
  std::string error;  // why handle is null
};

// Directory of this addon file, found from the address of a function inside it.
std::string addon_dir() {
  Dl_info dl{};
  if (!dladdr(reinterpret_cast<void*>(&addon_dir), &dl) || !dl.dli_fname) return ".";
  std::string f = dl.dli_fname;
  size_t slash = f.rfind('/');
  return slash == std::string::npos ? "." : f.substr(0, slash);
}

CudaLibrary& library() {
  static CudaLibrary lib;
  if (lib.tried) return lib;
  lib.tried = true;
#ifndef ANVIL_CUDA_BUILT
  lib.error = "anvil was built without CUDA (nvcc was not found when the addon was compiled)";
#else
  const char* env = std::getenv("ANVIL_CUDA_LIB");
  lib.path = env && *env ? env : addon_dir() + "/libanvil_cuda.so";
  lib.handle = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib.handle) {
    const char* e = dlerror();
    lib.error = std::string("cannot load the CUDA kernels: ") + (e ? e : lib.path);
    return lib;
  }
  using VersionFn = int (*)();
  auto version = reinterpret_cast<VersionFn>(dlsym(lib.handle, "anvil_cuda_abi_version"));
  if (!version || version() != ANVIL_CUDA_ABI_VERSION) {
    lib.error = lib.path + " is from another anvil version (ABI mismatch): rebuild the addon";
    dlclose(lib.handle);
    lib.handle = nullptr;
  }
#endif
  return lib;
}

void* symbol(const char* name) {
  CudaLibrary& lib = library();
  if (!lib.handle) throw std::runtime_error(lib.error);
  void* s = dlsym(lib.handle, name);
  if (!s) throw std::runtime_error(std::string(name) + " is missing from " + lib.path + ": rebuild the addon");
  return s;
}

template <typename Fn, typename... Args>
void call_checked(Fn fn, const char* name, Args... args) {
  char err[512] = "";
  int rc = fn(args..., err, sizeof err);
  if (rc == ANVIL_CUDA_EINVAL) throw anvil::ArgError(err, true);
  if (rc != 0) throw std::runtime_error(err[0] ? err : std::string(name) + " failed");
}

// Calls fn from the library: the prototype comes from cuda_api.h (decltype only: the addon
// never links against the symbol). A failure becomes a JS RangeError (bad argument) or Error.
#define CUDA_CALL(fn, ...)                                                  \
  do {                                                                      \
    static auto f_ = reinterpret_cast<decltype(&fn)>(symbol(#fn));          \
    call_checked(f_, #fn, ##__VA_ARGS__);                                   \
  } while (0)

// A device pointer: BigInt, or a Number that is a safe non-negative integer. null allowed
// only where the op takes an optional tensor.
void* dptr(const Napi::CallbackInfo& info, size_t i, const char* name, bool nullable = false) {
  if (i >= info.Length()) throw anvil::ArgError(std::string("missing argument ") + name, false);
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
  uint64_t p = 0;
  if (v.IsBigInt()) {
    bool lossless = false;
    p = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw anvil::ArgError(std::string(name) + " is not a valid device pointer", true);
  } else if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || static_cast<double>(static_cast<uint64_t>(d)) != d)
      throw anvil::ArgError(std::string(name) + " is not a valid device pointer", true);
    p = static_cast<uint64_t>(d);
  } else {
    throw anvil::ArgError(std::string(name) + " must be a device pointer (BigInt)", false);
  }
  if (p == 0) throw anvil::ArgError(std::string(name) + " is a null device pointer", true);
  return reinterpret_cast<void*>(static_cast<uintptr_t>(p));
}
float* fp(const Napi::CallbackInfo& info, size_t i, const char* name) { return static_cast<float*>(dptr(info, i, name)); }
float* fp_opt(const Napi::CallbackInfo& info, size_t i, const char* name) { return static_cast<float*>(dptr(info, i, name, true)); }
int32_t* ip(const Napi::CallbackInfo& info, size_t i, const char* name) { return static_cast<int32_t*>(dptr(info, i, name)); }
// The dtype code of a weight operand (ANVIL_CUDA_F32 or ANVIL_CUDA_BF16; absent = f32).
int wdtype(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || info[i].IsUndefined()) return ANVIL_CUDA_F32;
  const int64_t code = anvil::integer(info, i, name);
  if (code != ANVIL_CUDA_F32 && code != ANVIL_CUDA_BF16) throw anvil::ArgError(std::string(name) + " must be 0 (f32) or 1 (bf16)", true);
  return static_cast<int>(code);
}

int dim(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min = 0) {
  int64_t v = anvil::integer(info, i, name, min);
  if (v > INT_MAX) throw anvil::ArgError(std::string(name) + " is too large for the CUDA kernels", true);
  return static_cast<int>(v);
}
float f32v(const Napi::CallbackInfo& info, size_t i, const char* name) { return static_cast<float>(anvil::num(info, i, name)); }

Napi::Value pointer_value(Napi::Env env, void* p) { return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p))); }

// Host bytes of a typed array argument.
std::pair<uint8_t*, size_t> host_bytes(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray()) throw anvil::ArgError(std::string(name) + " must be a typed array", false);
  auto ta = info[i].As<Napi::TypedArray>();
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return {base, ta.ByteLength()};
}

}  // namespace

void* anvil::cuda_symbol(const char* name) { return symbol(name); }

// ---- library and devices ------------------------------------------------------------------

ANVIL_EXPORT(cudaInfo) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
#ifdef ANVIL_CUDA_BUILT
  o.Set("built", true);
#else
  o.Set("built", false);
#endif
  CudaLibrary& lib = library();
  o.Set("loaded", lib.handle != nullptr);
  o.Set("library", lib.path.empty() ? env.Null() : Napi::String::New(env, lib.path));
  auto names = Napi::Array::New(env);
  int count = 0;
  std::string error = lib.error;
  if (lib.handle) {
    auto count_fn = reinterpret_cast<decltype(&anvil_cuda_device_count)>(symbol("anvil_cuda_device_count"));
    auto name_fn = reinterpret_cast<decltype(&anvil_cuda_device_name)>(symbol("anvil_cuda_device_name"));
    char err[512] = "";
    if (count_fn(&count, err, sizeof err) != 0) {
      count = 0;
      error = err;
    } else if (count == 0) {
      error = "no CUDA-capable device is detected";
    }
    for (int d = 0; d < count; d++) {
      char name[256] = "";
      names.Set(d, name_fn(d, name, sizeof name, err, sizeof err) == 0 ? name : err);
    }
  }
  o.Set("devices", count);
  o.Set("deviceNames", names);
  o.Set("error", error.empty() ? env.Null() : Napi::String::New(env, error));
  return o;
}

ANVIL_EXPORT(cuda_setDevice) {
  CUDA_CALL(anvil_cuda_set_device, dim(info, 0, "device"));
  return info.Env().Undefined();
}

// ---- memory --------------------------------------------------------------------------------

// cuda_malloc(bytes) -> BigInt device pointer
ANVIL_EXPORT(cuda_malloc) {
  size_t bytes = static_cast<size_t>(anvil::integer(info, 0, "bytes"));
  void* p = nullptr;
  CUDA_CALL(anvil_cuda_malloc, &p, bytes);
  return pointer_value(info.Env(), p);
}

ANVIL_EXPORT(cuda_free) {
  CUDA_CALL(anvil_cuda_free, dptr(info, 0, "ptr"));
  return info.Env().Undefined();
}

// cuda_upload(dst, hostTypedArray): all of the array's bytes to dst
ANVIL_EXPORT(cuda_upload) {
  void* dst = dptr(info, 0, "dst");
  auto [src, bytes] = host_bytes(info, 1, "src");
  CUDA_CALL(anvil_cuda_upload, dst, src, bytes);
  return info.Env().Undefined();
}

// cuda_download(hostTypedArray, src): fills the whole array from src
ANVIL_EXPORT(cuda_download) {
  auto [dst, bytes] = host_bytes(info, 0, "dst");
  CUDA_CALL(anvil_cuda_download, dst, dptr(info, 1, "src"), bytes);
  return info.Env().Undefined();
}

ANVIL_EXPORT(cuda_copy) {
  CUDA_CALL(anvil_cuda_copy, dptr(info, 0, "dst"), dptr(info, 1, "src"), static_cast<size_t>(anvil::integer(info, 2, "bytes")));
  return info.Env().Undefined();
}

// cuda_fill32(dst, bits (uint32), count): fills count 32-bit words
ANVIL_EXPORT(cuda_fill32) {
  int64_t bits = anvil::integer(info, 1, "bits");
  if (bits > 0xffffffffLL) throw anvil::ArgError("bits must fit in 32 bits", true);
  CUDA_CALL(anvil_cuda_fill32, dptr(info, 0, "dst"), static_cast<uint32_t>(bits), static_cast<size_t>(anvil::integer(info, 2, "count")));
  return info.Env().Undefined();
}

ANVIL_EXPORT(cuda_memset) {
  CUDA_CALL(anvil_cuda_memset, dptr(info, 0, "dst"), dim(info, 1, "value"), static_cast<size_t>(anvil::integer(info, 2, "bytes")));
  return info.Env().Undefined();
}

ANVIL_EXPORT(cuda_sync) {
  CUDA_CALL(anvil_cuda_sync);
  return info.Env().Undefined();
}

// ---- elementwise ---------------------------------------------------------------------------

ANVIL_EXPORT(cuda_add) {
  CUDA_CALL(anvil_cuda_add, fp(info, 0, "out"), fp(info, 1, "a"), fp(info, 2, "b"), anvil::integer(info, 3, "n"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_accumulate) {
  CUDA_CALL(anvil_cuda_accumulate, fp(info, 0, "dst"), fp(info, 1, "src"), f32v(info, 2, "alpha"), anvil::integer(info, 3, "n"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_scale) {
  CUDA_CALL(anvil_cuda_scale, fp(info, 0, "t"), f32v(info, 1, "alpha"), anvil::integer(info, 2, "n"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_sumSquares) {
  CUDA_CALL(anvil_cuda_sum_squares, fp(info, 0, "out"), fp(info, 1, "t"), anvil::integer(info, 2, "n"));
  return info.Env().Undefined();
}

// ---- decoder ops ---------------------------------------------------------------------------

ANVIL_EXPORT(cuda_embeddingForward) {
  CUDA_CALL(anvil_cuda_embedding_forward, fp(info, 0, "out"), ip(info, 1, "ids"), static_cast<const void*>(dptr(info, 2, "table")),
            wdtype(info, 6, "tableDtype"), dim(info, 3, "N"),
            dim(info, 4, "C"), dim(info, 5, "V"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_embeddingBackward) {
  CUDA_CALL(anvil_cuda_embedding_backward, fp(info, 0, "dtable"), fp(info, 1, "dout"), ip(info, 2, "ids"), dim(info, 3, "N"),
            dim(info, 4, "C"), dim(info, 5, "V"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_matmul) {
  CUDA_CALL(anvil_cuda_matmul, fp(info, 0, "out"), fp(info, 1, "a"), static_cast<const void*>(dptr(info, 2, "b")),
            wdtype(info, 10, "bDtype"), dim(info, 3, "M"), dim(info, 4, "N"),
            dim(info, 5, "K"), anvil::boolean(info, 6, "transA"), anvil::boolean(info, 7, "transB"),
            anvil::boolean(info, 8, "accumulate"), f32v(info, 9, "alpha"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_biasAdd) {
  CUDA_CALL(anvil_cuda_bias_add, fp(info, 0, "out"), fp(info, 1, "bias"), dim(info, 2, "N"), dim(info, 3, "C"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_biasBackward) {
  CUDA_CALL(anvil_cuda_bias_backward, fp(info, 0, "dbias"), fp(info, 1, "dout"), dim(info, 2, "N"), dim(info, 3, "C"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_rmsnormForward) {
  CUDA_CALL(anvil_cuda_rmsnorm_forward, fp(info, 0, "out"), fp(info, 1, "rstd"), fp(info, 2, "inp"), fp(info, 3, "weight"),
            dim(info, 4, "N"), dim(info, 5, "C"), f32v(info, 6, "eps"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_rmsnormBackward) {
  CUDA_CALL(anvil_cuda_rmsnorm_backward, fp(info, 0, "dinp"), fp(info, 1, "dweight"), fp(info, 2, "dout"), fp(info, 3, "inp"),
            fp(info, 4, "weight"), fp(info, 5, "rstd"), dim(info, 6, "N"), dim(info, 7, "C"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_ropeForward) {
  CUDA_CALL(anvil_cuda_rope_forward, fp(info, 0, "out"), fp(info, 1, "inp"), ip(info, 2, "pos"), dim(info, 3, "N"), dim(info, 4, "nh"),
            dim(info, 5, "hd"), f32v(info, 6, "theta"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_ropeBackward) {
  CUDA_CALL(anvil_cuda_rope_backward, fp(info, 0, "dinp"), fp(info, 1, "dout"), ip(info, 2, "pos"), dim(info, 3, "N"),
            dim(info, 4, "nh"), dim(info, 5, "hd"), f32v(info, 6, "theta"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_attentionForward) {
  CUDA_CALL(anvil_cuda_attention_forward, fp(info, 0, "out"), fp(info, 1, "lse"), fp(info, 2, "q"), fp(info, 3, "k"), fp(info, 4, "v"),
            dim(info, 5, "B"), dim(info, 6, "T"), dim(info, 7, "nh"), dim(info, 8, "nkv", 1), dim(info, 9, "hd"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_attentionBackward) {
  CUDA_CALL(anvil_cuda_attention_backward, fp(info, 0, "dq"), fp(info, 1, "dk"), fp(info, 2, "dv"), fp(info, 3, "dout"), fp(info, 4, "q"),
            fp(info, 5, "k"), fp(info, 6, "v"), fp(info, 7, "out"), fp(info, 8, "lse"), dim(info, 9, "B"), dim(info, 10, "T"),
            dim(info, 11, "nh"), dim(info, 12, "nkv", 1), dim(info, 13, "hd"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_attentionDecode) {
  CUDA_CALL(anvil_cuda_attention_decode, fp(info, 0, "out"), fp(info, 1, "q"), fp(info, 2, "kCache"), fp(info, 3, "vCache"),
            ip(info, 4, "pos"), dim(info, 5, "B"), dim(info, 6, "Tq"), dim(info, 7, "S"), dim(info, 8, "nh"), dim(info, 9, "nkv", 1),
            dim(info, 10, "hd"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_kvWrite) {
  CUDA_CALL(anvil_cuda_kv_write, fp(info, 0, "cache"), fp(info, 1, "x"), ip(info, 2, "pos"), dim(info, 3, "B"), dim(info, 4, "Tq"),
            dim(info, 5, "S"), dim(info, 6, "nkv"), dim(info, 7, "hd"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_swigluForward) {
  CUDA_CALL(anvil_cuda_swiglu_forward, fp(info, 0, "out"), fp(info, 1, "gate"), fp(info, 2, "up"), anvil::integer(info, 3, "n"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_swigluBackward) {
  CUDA_CALL(anvil_cuda_swiglu_backward, fp(info, 0, "dgate"), fp(info, 1, "dup"), fp(info, 2, "dout"), fp(info, 3, "gate"),
            fp(info, 4, "up"), anvil::integer(info, 5, "n"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_crossEntropyForward) {
  CUDA_CALL(anvil_cuda_cross_entropy_forward, fp(info, 0, "loss"), fp(info, 1, "logits"), ip(info, 2, "targets"), dim(info, 3, "N"),
            dim(info, 4, "V"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_crossEntropyBackward) {
  CUDA_CALL(anvil_cuda_cross_entropy_backward, fp(info, 0, "dlogits"), fp(info, 1, "dloss"), fp(info, 2, "logits"), ip(info, 3, "targets"),
            dim(info, 4, "N"), dim(info, 5, "V"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_gatherRows) {
  CUDA_CALL(anvil_cuda_gather_rows, fp(info, 0, "out"), fp(info, 1, "inp"), ip(info, 2, "idx"), dim(info, 3, "M"), dim(info, 4, "N"),
            dim(info, 5, "C"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_adamw) {
  CUDA_CALL(anvil_cuda_adamw, fp(info, 0, "param"), fp(info, 1, "grad"), fp(info, 2, "m"), fp(info, 3, "v"), anvil::integer(info, 4, "n"),
            f32v(info, 5, "lr"), f32v(info, 6, "beta1"), f32v(info, 7, "beta2"), f32v(info, 8, "eps"), f32v(info, 9, "weightDecay"),
            dim(info, 10, "step", 1));
  return info.Env().Undefined();
}

// ---- fused kernels -------------------------------------------------------------------------

ANVIL_EXPORT(cuda_logprobFromLogits) {
  CUDA_CALL(anvil_cuda_logprob_from_logits, fp(info, 0, "logprob"), fp(info, 1, "entropy"), fp(info, 2, "logits"), ip(info, 3, "targets"),
            dim(info, 4, "N"), dim(info, 5, "V"), f32v(info, 6, "temperature"));
  return info.Env().Undefined();
}
// seeds is a host Uint32Array (B)
ANVIL_EXPORT(cuda_sample) {
  int B = dim(info, 3, "B");
  uint32_t* seeds = anvil::u32(info, 2, static_cast<size_t>(B), "seeds");
  CUDA_CALL(anvil_cuda_sample, ip(info, 0, "ids"), fp(info, 1, "logits"), seeds, B, dim(info, 4, "V", 1), f32v(info, 5, "temperature"),
            dim(info, 6, "topK"), f32v(info, 7, "topP"), f32v(info, 8, "minP"), anvil::boolean(info, 9, "greedy"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_linearLogprobForward) {
  CUDA_CALL(anvil_cuda_linear_logprob_forward, fp(info, 0, "logprob"), fp(info, 1, "entropy"), fp(info, 2, "lse"), fp(info, 3, "hidden"),
            static_cast<const void*>(dptr(info, 4, "weight")), wdtype(info, 10, "weightDtype"), ip(info, 5, "targets"),
            dim(info, 6, "N"), dim(info, 7, "H"), dim(info, 8, "V", 1), f32v(info, 9, "temperature"));
  return info.Env().Undefined();
}
ANVIL_EXPORT(cuda_linearLogprobBackward) {
  CUDA_CALL(anvil_cuda_linear_logprob_backward, fp(info, 0, "dhidden"), fp_opt(info, 1, "dweight"), fp(info, 2, "dlogprob"),
            fp(info, 3, "dentropy"), fp(info, 4, "hidden"), static_cast<const void*>(dptr(info, 5, "weight")),
            wdtype(info, 13, "weightDtype"), ip(info, 6, "targets"), fp(info, 7, "lse"),
            fp(info, 8, "entropy"), dim(info, 9, "N"), dim(info, 10, "H"), dim(info, 11, "V", 1), f32v(info, 12, "temperature"));
  return info.Env().Undefined();
}
// refLogprob, rolloutLogprob, entropy may be null
ANVIL_EXPORT(cuda_grpoLoss) {
  CUDA_CALL(anvil_cuda_grpo_loss, fp(info, 0, "dlogprob"), fp(info, 1, "dentropy"), fp(info, 2, "stats"), fp(info, 3, "logprob"),
            fp(info, 4, "oldLogprob"), fp_opt(info, 5, "refLogprob"), fp_opt(info, 6, "rolloutLogprob"), fp_opt(info, 7, "entropy"),
            fp(info, 8, "advantages"), fp(info, 9, "mask"), dim(info, 10, "B", 1), dim(info, 11, "T", 1), f32v(info, 12, "epsLow"),
            f32v(info, 13, "epsHigh"), f32v(info, 14, "dualClip"), f32v(info, 15, "beta"), dim(info, 16, "kl"),
            f32v(info, 17, "entropyCoef"), f32v(info, 18, "tisCap"), dim(info, 19, "aggregation"), dim(info, 20, "maxCompletionLength"));
  return info.Env().Undefined();
}
// oldLogprob, refLogprob, rolloutLogprob may be null
ANVIL_EXPORT(cuda_linearGrpoLoss) {
  CUDA_CALL(anvil_cuda_linear_grpo_loss, fp(info, 0, "dhidden"), fp(info, 1, "dweight"), fp(info, 2, "stats"), fp(info, 3, "logprob"),
            fp(info, 4, "entropy"), fp(info, 5, "hidden"), fp(info, 6, "weight"), ip(info, 7, "targets"), fp_opt(info, 8, "oldLogprob"),
            fp_opt(info, 9, "refLogprob"), fp_opt(info, 10, "rolloutLogprob"), fp(info, 11, "advantages"), fp(info, 12, "mask"),
            dim(info, 13, "H", 1), dim(info, 14, "V", 1), f32v(info, 15, "temperature"), f32v(info, 16, "lossScale"), dim(info, 17, "B", 1),
            dim(info, 18, "T", 1), f32v(info, 19, "epsLow"), f32v(info, 20, "epsHigh"), f32v(info, 21, "dualClip"), f32v(info, 22, "beta"),
            dim(info, 23, "kl"), f32v(info, 24, "entropyCoef"), f32v(info, 25, "tisCap"), dim(info, 26, "aggregation"),
            dim(info, 27, "maxCompletionLength"));
  return info.Env().Undefined();
}
