// Module entry: registers every function collected by ANVIL_EXPORT (see registry.h).
#include <napi.h>
#include "registry.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : anvil::export_table()) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

NODE_API_MODULE(anvil, Init)
