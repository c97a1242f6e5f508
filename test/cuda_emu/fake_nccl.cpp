// A stand-in for libnccl.so.2, for the tests of native/addon/nccl_binding.cpp on a machine
// without GPUs: loaded through ANVIL_NCCL_LIB next to the CUDA emulator, whose "device" pointers
// are host pointers. One rank only (an all-reduce over one rank is the identity); every call is
// appended to the file named by FAKE_NCCL_LOG, so a test can check the data type, reduction and
// stream the addon passed. FAKE_NCCL_ASYNC_ERROR=<ncclResult_t> makes ncclCommGetAsyncError
// report that error, as NCCL does when a peer dies. Values are those of NCCL's nccl.h.
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern "C" {

struct ncclComm {
  int nranks, rank;
};
struct ncclUniqueId {
  char internal[128];
};
enum { ncclSuccess = 0, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };
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
  std::memset(id->internal, 0, sizeof id->internal);
  std::snprintf(id->internal, sizeof id->internal, "fake-nccl-id");
  return ncclSuccess;
}

int ncclCommInitRank(ncclComm** comm, int nranks, ncclUniqueId id, int rank) {
  log_call("init nranks=%d rank=%d id=%s", nranks, rank, id.internal);
  if (nranks != 1 || rank != 0) {
    std::snprintf(g_last, sizeof g_last, "fake NCCL runs one rank only, got rank %d of %d", rank, nranks);
    return ncclInvalidUsage;
  }
  *comm = new ncclComm{nranks, rank};
  return ncclSuccess;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int datatype, int op, ncclComm* comm, void* stream) {
  log_call("allreduce count=%zu datatype=%d op=%d stream=%p inplace=%d", count, datatype, op, stream, send == recv);
  if (datatype != ncclFloat32 || op != ncclSum || !comm) return ncclInvalidArgument;
  if (send != recv) std::memcpy(recv, send, count * 4);
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
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case 6: return "remote process exited or there was a network error";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm*) { return g_last; }

}  // extern "C"
