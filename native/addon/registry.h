// The addon's export table. Each binding file registers its functions with ANVIL_EXPORT,
// so adding an op never touches a shared file; addon.cpp only walks this list.
// Every exported function runs inside a try/catch: C++ exceptions become JS errors, and
// nothing in native code ever calls exit() or abort().
#pragma once
#include <napi.h>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace anvil {

using ExportFn = Napi::Value (*)(const Napi::CallbackInfo&);

inline std::vector<std::pair<const char*, ExportFn>>& export_table() {
  static std::vector<std::pair<const char*, ExportFn>> table;
  return table;
}

struct Registrar {
  Registrar(const char* name, ExportFn fn) { export_table().emplace_back(name, fn); }
};

// Thrown for bad arguments: becomes a JS TypeError / RangeError.
struct ArgError : std::runtime_error {
  bool range;
  ArgError(const std::string& m, bool range_error) : std::runtime_error(m), range(range_error) {}
};

}  // namespace anvil

// ANVIL_EXPORT(name) { ...body using `info`...; return env.Undefined(); }
#define ANVIL_EXPORT(NAME)                                                              \
  static Napi::Value NAME##_impl(const Napi::CallbackInfo& info);                       \
  static Napi::Value NAME##_entry(const Napi::CallbackInfo& info) {                     \
    try {                                                                               \
      return NAME##_impl(info);                                                         \
    } catch (const Napi::Error&) {                                                      \
      throw;                                                                            \
    } catch (const anvil::ArgError& e) {                                                \
      if (e.range) throw Napi::RangeError::New(info.Env(), std::string(#NAME ": ") + e.what()); \
      throw Napi::TypeError::New(info.Env(), std::string(#NAME ": ") + e.what());       \
    } catch (const std::exception& e) {                                                 \
      throw Napi::Error::New(info.Env(), std::string(#NAME ": ") + e.what());           \
    }                                                                                   \
  }                                                                                     \
  static anvil::Registrar NAME##_registrar(#NAME, NAME##_entry);                        \
  static Napi::Value NAME##_impl(const Napi::CallbackInfo& info)
