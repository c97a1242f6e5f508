// Causal grouped-query attention (GQA) and its KV cache.
// B = batch, T = time, S = cache capacity, Tq = new query tokens, nh = query heads,
// nkv = key/value heads (nh % nkv == 0; query head h reads kv head h / (nh / nkv)),
// hd = head dim. Scores are scaled by 1/sqrt(hd).
#pragma once
#include <cstdint>

namespace anvil {

// q (B, T, nh, hd), k, v (B, T, nkv, hd) -> out (B, T, nh, hd), lse (B, nh, T)
// lse = log-sum-exp of each row's scaled scores, kept so backward can rebuild probabilities.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t T,
                       int64_t nh, int64_t nkv, int64_t hd);

// dout (B, T, nh, hd), q, k, v, out, lse -> dq (B, T, nh, hd), dk, dv (B, T, nkv, hd), all overwritten
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t T, int64_t nh,
                        int64_t nkv, int64_t hd);

// q (B, Tq, nh, hd), kcache, vcache (B, S, nkv, hd), pos (B) -> out (B, Tq, nh, hd)
// Query t of row b sits at position pos[b] + t and attends cache positions 0 .. pos[b] + t.
// Throws std::out_of_range unless 0 <= pos[b] and pos[b] + Tq <= S for every b.
void attention_decode(float* out, const float* q, const float* kcache, const float* vcache, const int32_t* pos,
                      int64_t B, int64_t Tq, int64_t S, int64_t nh, int64_t nkv, int64_t hd);

// x (B, Tq, nkv, hd), pos (B) -> cache (B, S, nkv, hd) rows pos[b] .. pos[b] + Tq - 1
// Throws std::out_of_range (writing nothing) unless 0 <= pos[b] and pos[b] + Tq <= S.
void kv_write(float* cache, const float* x, const int32_t* pos, int64_t B, int64_t Tq, int64_t S, int64_t nkv,
              int64_t hd);

}  // namespace anvil
