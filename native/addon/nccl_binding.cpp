// NCCL for JavaScript (the NcclOps of src/distributed/nccl.ts): all-reduce of gradients in device
// memory, between the CUDA backend's kernels. libnccl.so.2 (or the path in ANVIL_NCCL_LIB) is
// dlopen()ed on the first call, as libanvil_cuda is, so building needs neither NCCL's headers
// nor its library, and a machine without NCCL keeps the TCP all-reduce through host memory.
//
// Exports: nccl_info() -> { loaded, version, error } (never throws), nccl_getUniqueId() -> 128
// bytes, nccl_commInitRank(id, worldSize, rank) -> BigInt communicator, nccl_allReduceSum(comm,
// ptr, count) (float32 sum, in place), nccl_commDestroy(comm).
//
// Hangs: NCCL has no timeout of its own. ncclCommInitRank blocks until every rank has called it
// (nccl.ts makes the communicator only after every rank has answered over TCP), and an all-reduce
// whose peer died never completes on the GPU: nccl_allReduceSum returns once the work is
// enqueued, but the next cuda_sync or download then blocks the JS thread, where the TCP
// collective's timeout cannot run. So a watchdog thread (as torch.distributed's) polls each
// communicator's ncclCommGetAsyncError every ANVIL_NCCL_WATCHDOG_MS (default 500) and, when NCCL
// reports one (a peer's connection lost, ...), calls ncclCommAbort, which stops the kernels and
// unblocks the wait; the next nccl_allReduceSum then throws NCCL's error. Not covered: a peer that
// hangs without closing its connections, and the first all-reduce, which connects to the peers
// while holding the communicator (the watchdog waits for it). nccl_commDestroy also uses
// ncclCommAbort (every NCCL since 2.4), which frees the communicator without waiting for work in
// flight.
#include <dlfcn.h>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include "anvil/cuda_api.h"
#include "args.h"
#include "cuda_library.h"

namespace {

// Our own declarations of the few NCCL types used, with the values of NCCL's public nccl.h
// (NVIDIA/nccl, src/nccl.h.in: NCCL_UNIQUE_ID_BYTES 128; ncclResult_t ncclSuccess = 0;
// ncclDataType_t ncclFloat32 = 7; ncclRedOp_t ncclSum = 0). These are part of NCCL's ABI and
// have not changed since NCCL 2.0.
struct NcclUniqueId {
  char internal[128];
};
using NcclComm = struct ncclComm*;
using NcclResult = int;
constexpr NcclResult kNcclSuccess = 0;
constexpr int kNcclFloat32 = 7;
constexpr int kNcclSum = 0;

struct NcclLibrary {
  bool tried = false;
  void* handle = nullptr;
  std::string path;
  std::string error;  // why handle is null
  int version = 0;    // ncclGetVersion: 22304 for 2.23.4
  // Required.
  NcclResult (*getVersion)(int*) = nullptr;
  NcclResult (*getUniqueId)(NcclUniqueId*) = nullptr;
  NcclResult (*commInitRank)(NcclComm*, int, NcclUniqueId, int) = nullptr;
  NcclResult (*allReduce)(const void*, void*, size_t, int, int, NcclComm, void*) = nullptr;
  NcclResult (*commDestroy)(NcclComm) = nullptr;
  const char* (*getErrorString)(NcclResult) = nullptr;
  // Optional: absent from old releases.
  NcclResult (*commAbort)(NcclComm) = nullptr;                     // 2.4
  NcclResult (*commGetAsyncError)(NcclComm, NcclResult*) = nullptr;  // 2.4
  const char* (*getLastError)(NcclComm) = nullptr;                 // 2.13
};

template <typename Fn>
bool bind(NcclLibrary& lib, Fn& fn, const char* name, bool required) {
  fn = reinterpret_cast<Fn>(dlsym(lib.handle, name));
  if (!fn && required) {
    lib.error = lib.path + " has no " + name + ": not an NCCL 2 library";
    return false;
  }
  return true;
}

// Never freed: the detached watchdog may still use it while the process exits.
NcclLibrary& library() {
  static NcclLibrary& lib = *new NcclLibrary;
  if (lib.tried) return lib;
  lib.tried = true;
#ifndef ANVIL_CUDA_BUILT
  lib.error = "anvil was built without CUDA, so NCCL (which works on device memory) is not loaded";
#else
  const char* env = std::getenv("ANVIL_NCCL_LIB");
  lib.path = env && *env ? env : "libnccl.so.2";
  lib.handle = dlopen(lib.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib.handle) {
    const char* e = dlerror();
    lib.error = "cannot load NCCL from " + lib.path + ": " + (e ? e : "dlopen failed") +
                (env && *env ? "" : " (install NCCL 2, e.g. the libnccl2 package, or set ANVIL_NCCL_LIB to its path)");
    return lib;
  }
  bool ok = bind(lib, lib.getVersion, "ncclGetVersion", true) && bind(lib, lib.getUniqueId, "ncclGetUniqueId", true) &&
            bind(lib, lib.commInitRank, "ncclCommInitRank", true) && bind(lib, lib.allReduce, "ncclAllReduce", true) &&
            bind(lib, lib.commDestroy, "ncclCommDestroy", true) && bind(lib, lib.getErrorString, "ncclGetErrorString", true) &&
            bind(lib, lib.commAbort, "ncclCommAbort", false) && bind(lib, lib.commGetAsyncError, "ncclCommGetAsyncError", false) &&
            bind(lib, lib.getLastError, "ncclGetLastError", false);
  if (ok && lib.getVersion(&lib.version) != kNcclSuccess) {
    lib.error = lib.path + ": ncclGetVersion failed";
    ok = false;
  }
  if (!ok) {
    dlclose(lib.handle);
    lib.handle = nullptr;
    lib.version = 0;
  }
#endif
  return lib;
}

NcclLibrary& loaded() {
  NcclLibrary& lib = library();
  if (!lib.handle) throw std::runtime_error(lib.error);
  return lib;
}

// "ncclCommInitRank: unhandled system error (2): <NCCL's last message>"
std::string describe(NcclLibrary& lib, const char* what, NcclResult r, NcclComm comm) {
  std::string m = std::string(what) + ": " + lib.getErrorString(r) + " (" + std::to_string(r) + ")";
  const char* last = lib.getLastError ? lib.getLastError(comm) : nullptr;
  if (last && *last) m += std::string(": ") + last;
  return m;
}
[[noreturn]] void fail(NcclLibrary& lib, const char* what, NcclResult r, NcclComm comm) { throw std::runtime_error(describe(lib, what, r, comm)); }

// A communicator made here and not yet destroyed: JS passes it back as a BigInt, and a stale or
// made-up one must not reach NCCL.
struct Comm {
  void* stream;         // the CUDA ops' stream, where its all-reduces go
  std::string aborted;  // why the watchdog aborted it (empty: usable)
};

// The communicators and the watchdog share them under one mutex, held by the JS thread while it
// calls NCCL with a communicator, so the watchdog never aborts one in use. Never freed: the
// detached watchdog may still run while the process exits.
struct Comms {
  std::mutex mutex;
  std::map<NcclComm, Comm> live;
  bool watching = false;
};
Comms& comms() {
  static Comms* c = new Comms;
  return *c;
}

void watchdog(NcclLibrary* lib, int interval_ms) {
  Comms& c = comms();
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    std::lock_guard<std::mutex> hold(c.mutex);
    for (auto& [comm, state] : c.live) {
      if (!state.aborted.empty()) continue;
      NcclResult async = kNcclSuccess;
      NcclResult r = lib->commGetAsyncError(comm, &async);
      if (r == kNcclSuccess && async == kNcclSuccess) continue;
      state.aborted = describe(*lib, "NCCL communicator failed (a rank died or its link broke)", r != kNcclSuccess ? r : async, comm) +
                      "; aborted by the watchdog";
      lib->commAbort(comm);
    }
  }
}

void start_watchdog(NcclLibrary& lib) {
  Comms& c = comms();
  if (c.watching || !lib.commGetAsyncError || !lib.commAbort) return;
  const char* env = std::getenv("ANVIL_NCCL_WATCHDOG_MS");
  int ms = env && *env ? std::atoi(env) : 500;
  if (ms <= 0) return;  // 0 turns it off
  std::thread(watchdog, &lib, ms).detach();
  c.watching = true;
}

uint64_t u64(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsBigInt()) throw anvil::ArgError(std::string(name) + " must be a BigInt", false);
  bool lossless = false;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw anvil::ArgError(std::string(name) + " is out of range", true);
  return v;
}

NcclComm comm_arg(const Napi::CallbackInfo& info, size_t i) { return reinterpret_cast<NcclComm>(static_cast<uintptr_t>(u64(info, i, "comm"))); }

}  // namespace

ANVIL_EXPORT(nccl_info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  try {
    NcclLibrary& lib = library();
    o.Set("loaded", lib.handle != nullptr);
    o.Set("version", lib.version);
    o.Set("error", lib.handle ? env.Null() : Napi::String::New(env, lib.error));
  } catch (const std::exception& e) {  // never throws: the caller only wants to know
    o.Set("loaded", false);
    o.Set("version", 0);
    o.Set("error", std::string("nccl_info: ") + e.what());
  }
  return o;
}

ANVIL_EXPORT(nccl_getUniqueId) {
  NcclLibrary& lib = loaded();
  NcclUniqueId id{};
  NcclResult r = lib.getUniqueId(&id);
  if (r != kNcclSuccess) fail(lib, "ncclGetUniqueId", r, nullptr);
  auto out = Napi::Uint8Array::New(info.Env(), sizeof id.internal);
  std::memcpy(out.Data(), id.internal, sizeof id.internal);
  return out;
}

// nccl_commInitRank(uniqueId (128 bytes), worldSize, rank) on the CUDA backend's device: blocks
// until every rank has called it.
ANVIL_EXPORT(nccl_commInitRank) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw anvil::ArgError("uniqueId must be a Uint8Array", false);
  auto bytes = info[0].As<Napi::Uint8Array>();
  NcclUniqueId id{};
  if (bytes.ByteLength() != sizeof id.internal)
    throw anvil::ArgError("uniqueId must be " + std::to_string(sizeof id.internal) + " bytes (from nccl_getUniqueId), got " +
                              std::to_string(bytes.ByteLength()), true);
  std::memcpy(id.internal, bytes.Data(), sizeof id.internal);
  int64_t world = anvil::integer(info, 1, "worldSize", 1);
  int64_t rank = anvil::integer(info, 2, "rank");
  if (world > INT_MAX) throw anvil::ArgError("worldSize is too large", true);
  if (rank >= world) throw anvil::ArgError("rank must be below worldSize (" + std::to_string(world) + "), got " + std::to_string(rank), true);
  NcclLibrary& lib = loaded();

  // The device and stream the CUDA ops use: NCCL binds the communicator to the current device.
  auto current = reinterpret_cast<decltype(&anvil_cuda_current_stream)>(anvil::cuda_symbol("anvil_cuda_current_stream"));
  int device = -1;
  void* stream = nullptr;
  char err[512] = "";
  if (current(&device, &stream, err, sizeof err) != 0) throw std::runtime_error(err[0] ? err : "anvil_cuda_current_stream failed");

  NcclComm comm = nullptr;
  NcclResult r = lib.commInitRank(&comm, static_cast<int>(world), id, static_cast<int>(rank));
  if (r != kNcclSuccess) fail(lib, "ncclCommInitRank", r, nullptr);
  {
    std::lock_guard<std::mutex> hold(comms().mutex);
    comms().live[comm] = Comm{stream, ""};
  }
  start_watchdog(lib);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(comm)));
}

// nccl_allReduceSum(comm, ptr, count): ptr (count) f32 in device memory <- its sum over the
// ranks, enqueued on the CUDA ops' stream (so the kernels after it see the sums).
ANVIL_EXPORT(nccl_allReduceSum) {
  NcclComm comm = comm_arg(info, 0);
  uint64_t p = u64(info, 1, "ptr");
  if (p == 0) throw anvil::ArgError("ptr is a null device pointer", true);
  auto count = static_cast<size_t>(anvil::integer(info, 2, "count"));
  std::lock_guard<std::mutex> hold(comms().mutex);
  auto it = comms().live.find(comm);
  if (it == comms().live.end()) throw anvil::ArgError("comm is not a live NCCL communicator (destroyed, or not from nccl_commInitRank)", true);
  NcclLibrary& lib = loaded();  // loaded: it made comm
  if (!it->second.aborted.empty()) throw std::runtime_error(it->second.aborted);
  // An error NCCL already knows of: throw it rather than enqueue work that cannot finish.
  if (lib.commGetAsyncError) {
    NcclResult async = kNcclSuccess;
    NcclResult r = lib.commGetAsyncError(comm, &async);
    if (r != kNcclSuccess) fail(lib, "ncclCommGetAsyncError", r, comm);
    if (async != kNcclSuccess) fail(lib, "NCCL communicator failed (a rank died or its link broke)", async, comm);
  }
  if (count == 0) return info.Env().Undefined();
  void* buf = reinterpret_cast<void*>(static_cast<uintptr_t>(p));
  NcclResult r = lib.allReduce(buf, buf, count, kNcclFloat32, kNcclSum, comm, it->second.stream);
  if (r != kNcclSuccess) fail(lib, "ncclAllReduce", r, comm);
  return info.Env().Undefined();
}

// nccl_commDestroy(comm): frees the communicator without waiting for work in flight (ncclCommAbort
// when present); all-reduces still queued are dropped, so sync first. Destroying twice, or one the
// watchdog aborted, is a no-op.
ANVIL_EXPORT(nccl_commDestroy) {
  NcclComm comm = comm_arg(info, 0);
  std::unique_lock<std::mutex> hold(comms().mutex);
  auto it = comms().live.find(comm);
  if (it == comms().live.end()) return info.Env().Undefined();
  bool aborted = !it->second.aborted.empty();
  comms().live.erase(it);
  hold.unlock();
  if (aborted) return info.Env().Undefined();
  NcclLibrary& lib = loaded();
  NcclResult r = lib.commAbort ? lib.commAbort(comm) : lib.commDestroy(comm);
  if (r != kNcclSuccess) fail(lib, lib.commAbort ? "ncclCommAbort" : "ncclCommDestroy", r, nullptr);
  return info.Env().Undefined();
}
