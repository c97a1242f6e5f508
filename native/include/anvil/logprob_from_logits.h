// Per-row log-prob of a target and entropy from materialised logits, in one pass per row
// (online log-sum-exp, see online_softmax.h). N = rows, V = vocabulary.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// logits (N, V), targets (N) -> logprob (N), entropy (N) of softmax(logits / temperature).
// targets < 0: logprob 0, entropy 0 (row skipped). targets >= V throws std::out_of_range.
void logprob_from_logits(float* logprob, float* entropy, const float* logits, const int32_t* targets, int64_t N,
                         int64_t V, float temperature);

}  // namespace anvil::cpu
