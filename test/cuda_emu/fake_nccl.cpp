// A stand-in for libnccl.so.2, for the tests of native/addon/nccl_binding.cpp on a machine
// without GPUs: loaded through ANVIL_NCCL_LIB next to the CUDA emulator, whose "device" pointers
// are host pointers. Ranks are processes that meet in a directory named by the unique id (made
// under FAKE_NCCL_DIR, default /tmp): each all-reduce writes the rank's floats to a file, waits
// for every rank's file and sums them in rank order. Every call is appended to the file named by
// FAKE_NCCL_LOG, so a test can check the data type, reduction and stream the addon passed.
// FAKE_NCCL_ASYNC_ERROR=<ncclResult_t> makes ncclCommGetAsyncError report that error, as NCCL
// does when a peer dies. Values are those of NCCL's nccl.h.
#include <unistd.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {

struct ncclComm {
  int nranks, rank;
  std::string dir;
  long seq;
};
struct ncclUniqueId {
  char internal[128];
};
enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };
enum { ncclFloat32 = 7, ncclSum = 0 };

static char g_last[256] = "";

static void log_call(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_call(const char* fmt, ...) {
  const char* path = std::getenv("FAKE_NCCL_LOG");
  if (!path || !*path) return;
  FILE* f = std::fopen(path, "a");
  if (!f) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(f, fmt, ap);
  va_end(ap);
  std::fputc('\n', f);
  std::fclose(f);
}

int ncclGetVersion(int* version) {
  *version = 22304;
  return ncclSuccess;
}

int ncclGetUniqueId(ncclUniqueId* id) {
  const char* base = std::getenv("FAKE_NCCL_DIR");
  std::string dir = std::string(base && *base ? base : "/tmp") + "/fake-nccl-XXXXXX";
  if (!mkdtemp(dir.data())) return ncclSystemError;
  std::memset(id->internal, 0, sizeof id->internal);
  std::snprintf(id->internal, sizeof id->internal, "%s", dir.c_str());
  return ncclSuccess;
}

static bool write_file(const std::string& path, const void* data, size_t bytes) {
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return false;
  bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  ok = std::fclose(f) == 0 && ok;
  return ok && std::rename(tmp.c_str(), path.c_str()) == 0;  // appears whole or not at all
}
static bool write_or_explain(const std::string& path, const void* data, size_t bytes) {
  if (write_file(path, data, bytes)) return true;
  std::snprintf(g_last, sizeof g_last, "fake NCCL: cannot write %s", path.c_str());
  return false;
}

// Waits (up to 20 s) for every rank's `<prefix>.<rank>` file; false on timeout.
static bool wait_all(const std::string& prefix, int nranks) {
  for (int tries = 0; tries < 20000; tries++) {
    int present = 0;
    for (int r = 0; r < nranks; r++) present += access((prefix + "." + std::to_string(r)).c_str(), F_OK) == 0;
    if (present == nranks) return true;
    usleep(1000);
  }
  std::snprintf(g_last, sizeof g_last, "fake NCCL: timed out waiting for the other ranks in %s", prefix.c_str());
  return false;
}

int ncclCommInitRank(ncclComm** comm, int nranks, ncclUniqueId id, int rank) {
  log_call("init nranks=%d rank=%d", nranks, rank);
  if (nranks < 1 || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  std::string dir(id.internal, strnlen(id.internal, sizeof id.internal));
  if (!write_or_explain(dir + "/join." + std::to_string(rank), "", 0) || !wait_all(dir + "/join", nranks)) return ncclSystemError;
  *comm = new ncclComm{nranks, rank, dir, 0};
  return ncclSuccess;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int datatype, int op, ncclComm* comm, void* stream) {
  log_call("allreduce count=%zu datatype=%d op=%d stream=%p inplace=%d", count, datatype, op, stream, send == recv);
  if (datatype != ncclFloat32 || op != ncclSum || !comm) return ncclInvalidArgument;
  std::string prefix = comm->dir + "/" + std::to_string(comm->seq++);
  if (!write_or_explain(prefix + "." + std::to_string(comm->rank), send, count * 4) || !wait_all(prefix, comm->nranks)) return ncclSystemError;
  std::vector<float> sum(count, 0.0f), part(count);
  for (int r = 0; r < comm->nranks; r++) {
    FILE* f = std::fopen((prefix + "." + std::to_string(r)).c_str(), "rb");
    bool ok = f && std::fread(part.data(), 4, count, f) == count;
    if (f) std::fclose(f);
    if (!ok) return ncclSystemError;
    for (size_t i = 0; i < count; i++) sum[i] += part[i];
  }
  std::memcpy(recv, sum.data(), count * 4);
  return ncclSuccess;
}

int ncclCommGetAsyncError(ncclComm*, int* async) {
  const char* e = std::getenv("FAKE_NCCL_ASYNC_ERROR");
  *async = e && *e ? std::atoi(e) : ncclSuccess;
  if (*async) std::snprintf(g_last, sizeof g_last, "fake NCCL: peer connection lost");
  return ncclSuccess;
}

int ncclCommDestroy(ncclComm* comm) {
  log_call("destroy");
  delete comm;
  return ncclSuccess;
}

int ncclCommAbort(ncclComm* comm) {
  log_call("abort");
  delete comm;
  return ncclSuccess;
}

const char* ncclGetErrorString(int result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case 6: return "remote process exited or there was a network error";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm*) { return g_last; }

}  // extern "C"
