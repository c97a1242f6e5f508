// logits (N, V), targets (N) -> logprob (N), entropy (N)
// One read of each row: the row is folded chunk by chunk (L1-sized) into an online
// log-sum-exp state that also carries the entropy sum, so a 4096 x 32000 batch costs one
// pass over 0.5 GB. Rows run in parallel.
#include "anvil/logprob_from_logits.h"

#include <stdexcept>
#include <string>

#include "online_softmax.h"

namespace anvil::cpu {

namespace {
constexpr int64_t kChunk = 2048;  // 8 KiB of floats: stays in L1 between the max and exp passes
}

void logprob_from_logits(float* logprob, float* entropy, const float* logits, const int32_t* targets, int64_t N,
                         int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= V)
      throw std::out_of_range("targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                              " is out of range [0, V = " + std::to_string(V) + ")");
  const float inv_t = 1.0f / temperature;
#pragma omp parallel for schedule(dynamic, 4) if (N * V >= 65536)
  for (int64_t i = 0; i < N; i++) {
    const int32_t tgt = targets[i];
    if (tgt < 0) {
      logprob[i] = 0.0f;
      entropy[i] = 0.0f;
      continue;
    }
    const float* row = logits + i * V;
    OnlineSoftmax st;
    for (int64_t v0 = 0; v0 < V; v0 += kChunk) online_update(st, row + v0, std::min(kChunk, V - v0), inv_t);
    logprob[i] = row[tgt] * inv_t - st.lse();
    entropy[i] = st.entropy();
  }
}

}  // namespace anvil::cpu
