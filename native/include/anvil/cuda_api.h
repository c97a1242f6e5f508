// C ABI of libanvil_cuda, the CUDA kernels. The Node addon dlopen()s the library on first use
// (native/addon/cuda_binding.cpp), so the addon itself never links against CUDA and loads on
// machines without a GPU.
//
// Every function returns 0 on success or an error code, and on error writes a message into
// err[0 .. errlen) (always NUL-terminated). Nothing here exits or aborts.
//   ANVIL_CUDA_EINVAL (-1): a bad argument (shape too large for a kernel, null pointer, ...)
//   > 0: the cudaError_t that failed (e.g. 35 = cudaErrorInsufficientDriver, 100 = no device)
//
// Pointers named like tensors are device pointers; `seeds` in anvil_cuda_sample and the host
// side of upload/download are host pointers. Kernels run on the default stream: calls return
// once the work is enqueued, anvil_cuda_sync waits for it. Shapes and semantics are those of
// the Backend interface (src/backend/backend.ts); "+=" marks outputs that accumulate.
//
// One device and one calling thread at a time per process: the ops share a scratch workspace
// and an error-flag word, which stream order keeps safe for one caller, not for two.
#ifndef ANVIL_CUDA_API_H
#define ANVIL_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define ANVIL_CUDA_API __attribute__((visibility("default")))
#else
#define ANVIL_CUDA_API
#endif

#define ANVIL_CUDA_ABI_VERSION 3
#define ANVIL_CUDA_EINVAL (-1)
// Storage of a weight operand (matmul's b, an embedding table, the LM head): f32, or bf16 bits
// (uint16, frozen weights) widened to f32 as they are loaded; arithmetic is f32 either way.
#define ANVIL_CUDA_F32 0
#define ANVIL_CUDA_BF16 1

// ---- library and devices ----------------------------------------------------------------
ANVIL_CUDA_API int anvil_cuda_abi_version(void);
/** Number of CUDA devices; fails (error 35 / 100 / ...) when there is no driver or device. */
ANVIL_CUDA_API int anvil_cuda_device_count(int* count, char* err, size_t errlen);
ANVIL_CUDA_API int anvil_cuda_device_name(int device, char* name, size_t namelen, char* err, size_t errlen);
ANVIL_CUDA_API int anvil_cuda_set_device(int device, char* err, size_t errlen);
/** Where the ops run, for a library that enqueues work between them (NCCL, through the addon's
 *  nccl_binding.cpp): makes the ops' device current on the calling thread (at driver level, so
 *  a library with its own CUDA runtime sees it too) and returns it with the stream the ops use,
 *  cudaStreamLegacy (the legacy default stream, named explicitly so that a library built with
 *  per-thread default streams cannot read NULL as another stream). */
ANVIL_CUDA_API int anvil_cuda_current_stream(int* device, void** stream, char* err, size_t errlen);

// ---- memory -------------------------------------------------------------------------------
ANVIL_CUDA_API int anvil_cuda_malloc(void** ptr, size_t bytes, char* err, size_t errlen);
ANVIL_CUDA_API int anvil_cuda_free(void* ptr, char* err, size_t errlen);
/** host src -> device dst (synchronous). */
ANVIL_CUDA_API int anvil_cuda_upload(void* dst, const void* src, size_t bytes, char* err, size_t errlen);
/** device src -> host dst (synchronous: waits for the kernels writing src). */
ANVIL_CUDA_API int anvil_cuda_download(void* dst, const void* src, size_t bytes, char* err, size_t errlen);
/** device -> device, enqueued. */
ANVIL_CUDA_API int anvil_cuda_copy(void* dst, const void* src, size_t bytes, char* err, size_t errlen);
ANVIL_CUDA_API int anvil_cuda_memset(void* dst, int value, size_t bytes, char* err, size_t errlen);
/** dst[i] = bits for i < count (32-bit words): fills f32 and i32 tensors with any value. */
ANVIL_CUDA_API int anvil_cuda_fill32(void* dst, uint32_t bits, size_t count, char* err, size_t errlen);
/** Waits for all enqueued work; also reports out-of-range ids/positions seen by kernels since
 *  the last sync (kernels cannot throw, they skip the bad row and raise a flag). */
ANVIL_CUDA_API int anvil_cuda_sync(char* err, size_t errlen);

// ---- elementwise ----------------------------------------------------------------------------
// out (n) = a (n) + b (n); out may alias a or b
ANVIL_CUDA_API int anvil_cuda_add(float* out, const float* a, const float* b, int64_t n, char* err, size_t errlen);
// dst (n) += alpha * src (n)
ANVIL_CUDA_API int anvil_cuda_accumulate(float* dst, const float* src, float alpha, int64_t n, char* err, size_t errlen);
// t (n) *= alpha
ANVIL_CUDA_API int anvil_cuda_scale(float* t, float alpha, int64_t n, char* err, size_t errlen);
// out (1) += sum(t^2)
ANVIL_CUDA_API int anvil_cuda_sum_squares(float* out, const float* t, int64_t n, char* err, size_t errlen);

// ---- decoder ops ----------------------------------------------------------------------------
// ids (N) i32, table (V, C) f32 or bf16 (table_dtype) -> out (N, C)
ANVIL_CUDA_API int anvil_cuda_embedding_forward(float* out, const int32_t* ids, const void* table, int table_dtype, int N, int C, int V, char* err, size_t errlen);
// dtable (V, C) +=, dout (N, C), ids (N)
ANVIL_CUDA_API int anvil_cuda_embedding_backward(float* dtable, const float* dout, const int32_t* ids, int N, int C, int V, char* err, size_t errlen);
// out (M, N) (+)= alpha * op(a) @ op(b); op(a) (M, K), op(b) (K, N); row-major; b f32 or bf16 (b_dtype)
ANVIL_CUDA_API int anvil_cuda_matmul(float* out, const float* a, const void* b, int b_dtype, int M, int N, int K, int transA, int transB, int accumulate, float alpha, char* err, size_t errlen);
// out (N, C) += bias (C)
ANVIL_CUDA_API int anvil_cuda_bias_add(float* out, const float* bias, int N, int C, char* err, size_t errlen);
// dbias (C) += sum over rows of dout (N, C)
ANVIL_CUDA_API int anvil_cuda_bias_backward(float* dbias, const float* dout, int N, int C, char* err, size_t errlen);
// inp (N, C), weight (C) -> out (N, C), rstd (N)
ANVIL_CUDA_API int anvil_cuda_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps, char* err, size_t errlen);
// dout (N, C), inp, weight, rstd -> dinp (N, C), dweight (C) +=
ANVIL_CUDA_API int anvil_cuda_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int N, int C, char* err, size_t errlen);
// inp (N, nh, hd), pos (N) -> out (N, nh, hd), rotate-half layout; out may alias inp
ANVIL_CUDA_API int anvil_cuda_rope_forward(float* out, const float* inp, const int32_t* pos, int N, int nh, int hd, float theta, char* err, size_t errlen);
// dout (N, nh, hd), pos (N) -> dinp (N, nh, hd); dinp may alias dout
ANVIL_CUDA_API int anvil_cuda_rope_backward(float* dinp, const float* dout, const int32_t* pos, int N, int nh, int hd, float theta, char* err, size_t errlen);
// q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd), lse (B, nh, T); causal GQA
ANVIL_CUDA_API int anvil_cuda_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int B, int T, int nh, int nkv, int hd, char* err, size_t errlen);
// dout, q, out (B, T, nh, hd), k, v (B, T, nkv, hd), lse (B, nh, T) -> dq, dk, dv (overwritten)
ANVIL_CUDA_API int anvil_cuda_attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v, const float* out, const float* lse, int B, int T, int nh, int nkv, int hd, char* err, size_t errlen);
// q (B, Tq, nh, hd), kCache, vCache (B, S, nkv, hd), pos (B) -> out (B, Tq, nh, hd)
ANVIL_CUDA_API int anvil_cuda_attention_decode(float* out, const float* q, const float* kCache, const float* vCache, const int32_t* pos, int B, int Tq, int S, int nh, int nkv, int hd, char* err, size_t errlen);
// x (B, Tq, nkv, hd), pos (B) -> cache (B, S, nkv, hd) rows pos[b] .. pos[b] + Tq - 1
ANVIL_CUDA_API int anvil_cuda_kv_write(float* cache, const float* x, const int32_t* pos, int B, int Tq, int S, int nkv, int hd, char* err, size_t errlen);
// gate, up (n) -> out (n) = silu(gate) * up
ANVIL_CUDA_API int anvil_cuda_swiglu_forward(float* out, const float* gate, const float* up, int64_t n, char* err, size_t errlen);
// dout, gate, up (n) -> dgate, dup (n)
ANVIL_CUDA_API int anvil_cuda_swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n, char* err, size_t errlen);
// logits (N, V), targets (N) (< 0: ignored) -> loss (N)
ANVIL_CUDA_API int anvil_cuda_cross_entropy_forward(float* loss, const float* logits, const int32_t* targets, int N, int V, char* err, size_t errlen);
// dloss (N), logits (N, V), targets (N) -> dlogits (N, V)
ANVIL_CUDA_API int anvil_cuda_cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const int32_t* targets, int N, int V, char* err, size_t errlen);
// inp (N, C), idx (M) -> out (M, C)
ANVIL_CUDA_API int anvil_cuda_gather_rows(float* out, const float* inp, const int32_t* idx, int M, int N, int C, char* err, size_t errlen);
// param, grad, m, v (n): one AdamW step, in place
ANVIL_CUDA_API int anvil_cuda_adamw(float* param, const float* grad, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps, float weightDecay, int step, char* err, size_t errlen);

// ---- fused kernels --------------------------------------------------------------------------
// logits (N, V), targets (N) -> logprob (N), entropy (N) of softmax(logits / temperature)
ANVIL_CUDA_API int anvil_cuda_logprob_from_logits(float* logprob, float* entropy, const float* logits, const int32_t* targets, int N, int V, float temperature, char* err, size_t errlen);
// logits (B, V), seeds (B) host -> ids (B)
ANVIL_CUDA_API int anvil_cuda_sample(int32_t* ids, const float* logits, const uint32_t* seeds, int B, int V, float temperature, int topK, float topP, float minP, int greedy, char* err, size_t errlen);
// hidden (N, H), weight (V, H) f32 or bf16 (weight_dtype), targets (N) -> logprob (N), entropy (N), lse (N)
ANVIL_CUDA_API int anvil_cuda_linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const void* weight, int weight_dtype, const int32_t* targets, int N, int H, int V, float temperature, char* err, size_t errlen);
// dlogprob (N), dentropy (N) -> dhidden (N, H) (overwritten), dweight (V, H) += (dweight NULL: skipped)
ANVIL_CUDA_API int anvil_cuda_linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy, const float* hidden, const void* weight, int weight_dtype, const int32_t* targets, const float* lse, const float* entropy, int N, int H, int V, float temperature, char* err, size_t errlen);
// per token (B*T): logprob, oldLogprob, refLogprob|NULL, rolloutLogprob|NULL, entropy|NULL, mask;
// advantages (B) -> dlogprob (B*T), dentropy (B*T), stats (11, GRPO_STATS order)
// kl: 0 k1, 1 k2, 2 k3; aggregation: 0 token-mean, 1 seq-mean-token-mean, 2 seq-mean-token-sum, 3 dr-grpo
ANVIL_CUDA_API int anvil_cuda_grpo_loss(float* dlogprob, float* dentropy, float* stats, const float* logprob, const float* oldLogprob, const float* refLogprob, const float* rolloutLogprob, const float* entropy, const float* advantages, const float* mask, int B, int T, float epsLow, float epsHigh, float dualClip, float beta, int kl, float entropyCoef, float tisCap, int aggregation, int maxCompletionLength, char* err, size_t errlen);
// hidden (N, H), weight (V, H), targets (N), old?, ref?, rollout? (N), advantages (B), mask (N), N = B*T
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (11), logprob (N), entropy (N); codes as grpo_loss
ANVIL_CUDA_API int anvil_cuda_linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy, const float* hidden, const float* weight, const int32_t* targets, const float* oldLogprob, const float* refLogprob, const float* rolloutLogprob, const float* advantages, const float* mask, int H, int V, float temperature, float lossScale, int B, int T, float epsLow, float epsHigh, float dualClip, float beta, int kl, float entropyCoef, float tisCap, int aggregation, int maxCompletionLength, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif  // ANVIL_CUDA_API_H
