// grpo_loss's token loop over a range of sequences, one version per vector ISA (private to
// native/cpu): the AVX2 one in grpo_loss.cpp, the AVX-512 one in grpo_loss_avx512.cpp.
#pragma once
#include <cstdint>

#include "grpo_token.h"

namespace anvil::cpu {

// The per-token arrays of one grpo_loss call (optional ones null) and its outputs.
struct GrpoRows {
  float* dlogprob;
  float* dentropy;
  const float *logprob, *old_logprob, *ref_logprob, *rollout_logprob, *entropy, *mask, *advantages;
};

// Writes the gradients of sequences [b0, b1) and returns their stats.
using GrpoRowsFn = GrpoStatsSum (*)(const GrpoRows& x, const GrpoWeights& weights, const GrpoOptions& o, int64_t b0,
                                    int64_t b1);

// Null when not compiled in or the CPU lacks AVX-512F.
GrpoRowsFn grpo_rows_avx512();

}  // namespace anvil::cpu
