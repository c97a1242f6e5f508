// Argument access for bindings. TypeScript validates shapes first (with friendly messages);
// these checks are the last line of defence so that a wrong call can never read or write
// outside a buffer.
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>
#include "registry.h"

namespace anvil {

template <typename T, napi_typedarray_type K>
inline T* typed_array(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name,
                      bool nullable = false) {
  if (i >= info.Length()) throw ArgError(std::string("missing argument ") + name, false);
  Napi::Value v = info[i];
  if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsTypedArray()) throw ArgError(std::string(name) + " must be a typed array", false);
  auto ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != K) throw ArgError(std::string(name) + " has the wrong element type", false);
  if (ta.ElementLength() < min_len)
    throw ArgError(std::string(name) + " has " + std::to_string(ta.ElementLength()) +
                       " elements, needs " + std::to_string(min_len),
                   true);
  auto* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  return reinterpret_cast<T*>(base);
}

inline float* f32(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name) {
  return typed_array<float, napi_float32_array>(info, i, min_len, name);
}
inline float* f32_opt(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name) {
  return typed_array<float, napi_float32_array>(info, i, min_len, name, true);
}
inline int32_t* i32(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name) {
  return typed_array<int32_t, napi_int32_array>(info, i, min_len, name);
}
inline uint32_t* u32(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name) {
  return typed_array<uint32_t, napi_uint32_array>(info, i, min_len, name);
}

// A weight operand that may be stored in f32 (Float32Array) or bf16 (Uint16Array of the bits),
// as the dtype code at info[dtype_at] says (0 = f32, 1 = bf16; absent = f32). The two must agree.
struct Weight {
  const void* ptr;
  bool bf16;
  const float* f32() const { return static_cast<const float*>(ptr); }
  const uint16_t* bits() const { return static_cast<const uint16_t*>(ptr); }
};
inline Weight weight(const Napi::CallbackInfo& info, size_t i, size_t min_len, const char* name, size_t dtype_at,
                     bool nullable = false) {
  bool bf16 = false;
  if (dtype_at < info.Length() && !info[dtype_at].IsUndefined()) {
    if (!info[dtype_at].IsNumber()) throw ArgError(std::string(name) + " dtype code must be a number", false);
    const double code = info[dtype_at].As<Napi::Number>().DoubleValue();
    if (code != 0 && code != 1) throw ArgError(std::string(name) + " dtype code must be 0 (f32) or 1 (bf16)", true);
    bf16 = code == 1;
  }
  if (bf16) return {typed_array<uint16_t, napi_uint16_array>(info, i, min_len, name, nullable), true};
  return {typed_array<float, napi_float32_array>(info, i, min_len, name, nullable), false};
}

inline double num(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgError(std::string(name) + " must be a number", false);
  return info[i].As<Napi::Number>().DoubleValue();
}
inline int64_t integer(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t min = 0) {
  double d = num(info, i, name);
  auto v = static_cast<int64_t>(d);
  if (static_cast<double>(v) != d) throw ArgError(std::string(name) + " must be an integer", false);
  if (v < min) throw ArgError(std::string(name) + " must be >= " + std::to_string(min), true);
  return v;
}
inline bool boolean(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw ArgError(std::string(name) + " must be a boolean", false);
  return info[i].As<Napi::Boolean>().Value();
}

}  // namespace anvil
