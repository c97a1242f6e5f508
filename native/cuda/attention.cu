// Causal grouped-query attention, scale 1/sqrt(hd). Query head h reads kv head h / (nh / nkv).
//
// One warp per query row: lane l holds dimensions l, l + 32, ... of q and of the output
// accumulator (hd <= 256), dot products are warp sums, and the softmax is computed online
// (running max and sum, flash-attention style), so no T x T score matrix is ever stored.
// The backward recomputes the probabilities from the saved log-sum-exp, in two passes that
// need no atomics: one warp per query row for dq, one warp per key row for dk and dv.
#include <cmath>
#include "common.cuh"

namespace {

constexpr int kMaxPerLane = 8;  // hd <= 32 * 8
constexpr int kThreads = 128;   // 4 warps per block

using anvil_cuda::warp_sum;

struct Row {
  float x[kMaxPerLane];
};

__device__ __forceinline__ Row load_row(const float* p, int hd) {
  const int lane = threadIdx.x % 32;
  Row r;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int d = lane + 32 * j;
    r.x[j] = d < hd ? p[d] : 0.0f;
  }
  return r;
}

__device__ __forceinline__ void store_row(float* p, const Row& r, int hd, float mul) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int d = lane + 32 * j;
    if (d < hd) p[d] = r.x[j] * mul;
  }
}

__device__ __forceinline__ float dot_row(const Row& a, const float* b, int hd) {
  const int lane = threadIdx.x % 32;
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int d = lane + 32 * j;
    if (d < hd) s += a.x[j] * b[d];
  }
  return warp_sum(s);
}

__device__ __forceinline__ void axpy_row(Row& acc, float alpha, const float* x, int hd) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int j = 0; j < kMaxPerLane; j++) {
    const int d = lane + 32 * j;
    if (d < hd) acc.x[j] += alpha * x[d];
  }
}

// Online softmax attention of one query over keys 0 .. nkeys-1 (stride `kv_stride` floats
// between consecutive keys). Writes out (hd) and returns the log-sum-exp of the scores.
__device__ float attend(float* out, const float* q, const float* k, const float* v, int64_t kv_stride, int nkeys, int hd,
                        float scale) {
  const Row qr = load_row(q, hd);
  Row acc = {};
  float m = -INFINITY, l = 0.0f;
  for (int s = 0; s < nkeys; s++) {
    const float score = dot_row(qr, k + s * kv_stride, hd) * scale;
    const float m_new = fmaxf(m, score);
    const float c = __expf(m - m_new), p = __expf(score - m_new);
    l = l * c + p;
#pragma unroll
    for (int j = 0; j < kMaxPerLane; j++) acc.x[j] *= c;
    axpy_row(acc, p, v + s * kv_stride, hd);
    m = m_new;
  }
  store_row(out, acc, hd, 1.0f / l);
  return m + logf(l);
}

// q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd), lse (B, nh, T)
__global__ void attention_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T,
                                         int nh, int nkv, int hd, float scale) {
  const int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;  // (b, t, h) row
  if (w >= (int64_t)B * T * nh) return;
  const int h = w % nh, t = (w / nh) % T, b = w / ((int64_t)nh * T);
  const int kvh = h / (nh / nkv);
  const int64_t kv0 = ((int64_t)b * T * nkv + kvh) * hd;  // key 0 of this batch row and kv head
  const float l = attend(out + w * hd, q + w * hd, k + kv0, v + kv0, (int64_t)nkv * hd, t + 1, hd, scale);
  if (threadIdx.x % 32 == 0) lse[((int64_t)b * nh + h) * T + t] = l;
}

// Pass 1, one warp per query row (b, t, h):
//   D = dout . out;  for s <= t: P = exp(q.k_s * scale - lse), dS = P * (dout . v_s - D)
//   dq = scale * sum_s dS k_s;  D is saved for pass 2.
__global__ void attention_backward_dq_kernel(float* dq, float* Dbuf, const float* dout, const float* q, const float* k,
                                             const float* v, const float* out, const float* lse, int B, int T, int nh, int nkv,
                                             int hd, float scale) {
  const int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
  if (w >= (int64_t)B * T * nh) return;
  const int h = w % nh, t = (w / nh) % T, b = w / ((int64_t)nh * T);
  const int kvh = h / (nh / nkv);
  const int64_t kv0 = ((int64_t)b * T * nkv + kvh) * hd, kv_stride = (int64_t)nkv * hd;
  const int64_t li = ((int64_t)b * nh + h) * T + t;
  const Row qr = load_row(q + w * hd, hd), gr = load_row(dout + w * hd, hd);
  const float D = dot_row(gr, out + w * hd, hd);
  const float L = lse[li];
  Row acc = {};
  for (int s = 0; s <= t; s++) {
    const float* ks = k + kv0 + s * kv_stride;
    const float P = __expf(dot_row(qr, ks, hd) * scale - L);
    const float dS = P * (dot_row(gr, v + kv0 + s * kv_stride, hd) - D);
    axpy_row(acc, dS, ks, hd);
  }
  store_row(dq + w * hd, acc, hd, scale);
  if (threadIdx.x % 32 == 0) Dbuf[li] = D;
}

// Pass 2, one warp per key row (b, s, kvh), over the query heads of its group and t >= s:
//   dv_s = sum P dout_t;  dk_s = scale * sum dS q_t
__global__ void attention_backward_dkv_kernel(float* dk, float* dv, const float* Dbuf, const float* dout, const float* q,
                                              const float* k, const float* v, const float* lse, int B, int T, int nh, int nkv,
                                              int hd, float scale) {
  const int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;  // (b, s, kvh) row
  if (w >= (int64_t)B * T * nkv) return;
  const int kvh = w % nkv, s = (w / nkv) % T, b = w / ((int64_t)nkv * T);
  const int group = nh / nkv;
  const Row kr = load_row(k + w * hd, hd), vr = load_row(v + w * hd, hd);
  Row dk_acc = {}, dv_acc = {};
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int t = s; t < T; t++) {
      const int64_t qi = (((int64_t)b * T + t) * nh + h) * hd;
      const int64_t li = ((int64_t)b * nh + h) * T + t;
      const float P = __expf(dot_row(kr, q + qi, hd) * scale - lse[li]);
      axpy_row(dv_acc, P, dout + qi, hd);
      const float dS = P * (dot_row(vr, dout + qi, hd) - Dbuf[li]);
      axpy_row(dk_acc, dS, q + qi, hd);
    }
  }
  store_row(dk + w * hd, dk_acc, hd, scale);
  store_row(dv + w * hd, dv_acc, hd, 1.0f);
}

// q (B, Tq, nh, hd), kCache, vCache (B, S, nkv, hd), pos (B) -> out (B, Tq, nh, hd)
// Query t of row b sits at position pos[b] + t and sees cache positions 0 .. pos[b] + t.
__global__ void attention_decode_kernel(float* out, const float* q, const float* kc, const float* vc, const int32_t* pos, int B,
                                        int Tq, int S, int nh, int nkv, int hd, float scale, unsigned int* flags) {
  const int64_t w = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
  if (w >= (int64_t)B * Tq * nh) return;
  const int h = w % nh, t = (w / nh) % Tq, b = w / ((int64_t)nh * Tq);
  const int p = pos[b] + t;
  if (pos[b] < 0 || p >= S) {
    if (threadIdx.x % 32 == 0) atomicOr(flags, anvil_cuda::BAD_POSITION);
    store_row(out + w * hd, Row{}, hd, 0.0f);
    return;
  }
  const int kvh = h / (nh / nkv);
  const int64_t kv0 = ((int64_t)b * S * nkv + kvh) * hd;
  attend(out + w * hd, q + w * hd, kc + kv0, vc + kv0, (int64_t)nkv * hd, p + 1, hd, scale);
}

// x (B, Tq, nkv, hd), pos (B) -> cache (B, S, nkv, hd) rows pos[b] .. pos[b] + Tq - 1
__global__ void kv_write_kernel(float* cache, const float* x, const int32_t* pos, int B, int Tq, int S, int row, unsigned int* flags) {
  const int64_t total = (int64_t)B * Tq * row;  // row = nkv * hd
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int r = e % row;
    const int t = (e / row) % Tq, b = e / ((int64_t)row * Tq);
    const int p = pos[b] + t;
    if (pos[b] < 0 || p >= S) {
      if (r == 0) atomicOr(flags, anvil_cuda::BAD_POSITION);
      continue;
    }
    cache[((int64_t)b * S + p) * row + r] = x[e];
  }
}

unsigned int warps_grid(int64_t warps) { return static_cast<unsigned int>((warps * 32 + kThreads - 1) / kThreads); }

}  // namespace

#define REQUIRE_HEADS()                                                                                              \
  REQUIRE(hd > 0 && hd <= 32 * kMaxPerLane, "head dim %d is not supported (1 .. %d)", hd, 32 * kMaxPerLane);          \
  REQUIRE(nkv > 0 && nh % nkv == 0, "query heads %d must be a multiple of kv heads %d", nh, nkv)

extern "C" {

int anvil_cuda_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int nh,
                                 int nkv, int hd, char* err, size_t errlen) {
  REQUIRE_HEADS();
  const int64_t rows = (int64_t)B * T * nh;
  if (rows <= 0) return 0;
  attention_forward_kernel<<<warps_grid(rows), kThreads>>>(out, lse, q, k, v, B, T, nh, nkv, hd, 1.0f / sqrtf((float)hd));
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                  const float* v, const float* out, const float* lse, int B, int T, int nh, int nkv, int hd,
                                  char* err, size_t errlen) {
  REQUIRE_HEADS();
  const int64_t rows = (int64_t)B * T * nh;
  if (rows <= 0) return 0;
  void* ws;
  CUDA_TRY(anvil_cuda::workspace(rows * sizeof(float), &ws));
  float* D = static_cast<float*>(ws);  // (B, nh, T)
  const float scale = 1.0f / sqrtf((float)hd);
  attention_backward_dq_kernel<<<warps_grid(rows), kThreads>>>(dq, D, dout, q, k, v, out, lse, B, T, nh, nkv, hd, scale);
  CHECK_LAUNCH();
  attention_backward_dkv_kernel<<<warps_grid((int64_t)B * T * nkv), kThreads>>>(dk, dv, D, dout, q, k, v, lse, B, T, nh, nkv, hd, scale);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_attention_decode(float* out, const float* q, const float* kCache, const float* vCache, const int32_t* pos, int B,
                                int Tq, int S, int nh, int nkv, int hd, char* err, size_t errlen) {
  REQUIRE_HEADS();
  const int64_t rows = (int64_t)B * Tq * nh;
  if (rows <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  attention_decode_kernel<<<warps_grid(rows), kThreads>>>(out, q, kCache, vCache, pos, B, Tq, S, nh, nkv, hd,
                                                          1.0f / sqrtf((float)hd), flags);
  CHECK_LAUNCH();
  return 0;
}

int anvil_cuda_kv_write(float* cache, const float* x, const int32_t* pos, int B, int Tq, int S, int nkv, int hd, char* err,
                        size_t errlen) {
  const int64_t total = (int64_t)B * Tq * nkv * hd;
  if (total <= 0) return 0;
  unsigned int* flags;
  CUDA_TRY(anvil_cuda::error_flags(&flags));
  kv_write_kernel<<<anvil_cuda::grid_for(total, 256), 256>>>(cache, x, pos, B, Tq, S, nkv * hd, flags);
  CHECK_LAUNCH();
  return 0;
}

}  // extern "C"
