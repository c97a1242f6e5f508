// Fused sampler: temperature, top-k, top-p, min-p and the draw in one kernel, exact in
// distribution and without sorting V. B = rows, V = vocabulary.
//
// Semantics (q_i = exp(z_i - max z), z = logits / temperature; p = q / sum q):
//   greedy or temperature <= 0 : the first index of the maximum logit.
//   top-k (0 < topK < V, else off): keep q_i >= the k-th largest q. Ties at the boundary are all
//        kept (HF TopKLogitsWarper semantics), so more than k tokens can survive.
//   top-p (topP < 1, 1 = off): over the top-k survivors K, keep q_i >= t_p where t_p is the largest
//        value such that sum_{j in K, q_j >= t_p} q_j >= topP * sum_{j in K} q_j: the smallest
//        prefix of K by probability reaching topP, with ties at the boundary all kept.
//   min-p (minP > 0, 0 = off): keep p_i >= minP * max p (i.e. q_i >= minP).
//   The kept set is the intersection (= top-k, then top-p on the renormalised survivors, then
//   min-p, as in HF generate). The token is drawn by inverse CDF over the kept tokens in index
//   order with u = splitmix64(seed[b]) in [0, 1) (53 bits): the same seed gives the same token.
// Degenerate rows throw std::invalid_argument naming the row: a NaN or +inf logit, or every logit
// -inf. -inf logits elsewhere are fine (probability 0, never drawn).
#pragma once
#include <cstdint>

namespace anvil::cpu {

// logits (B, V), seeds (B) -> ids (B)
void sample(int32_t* ids, const float* logits, const uint32_t* seeds, int64_t B, int64_t V, float temperature,
            int64_t top_k, float top_p, float min_p, bool greedy);

// The uniform in [0, 1) that sample() draws for a seed (exposed for tests and other backends).
double sample_uniform(uint32_t seed);

}  // namespace anvil::cpu
