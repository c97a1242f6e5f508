// Softmax cross-entropy over a vocabulary. N = rows (tokens), V = vocabulary.
// Targets < 0 mark ignored rows (padding, prompt tokens): loss 0 and gradient 0.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// logits (N, V), targets (N) i32 -> loss (N) = -log softmax(logits)[target]
// Throws std::out_of_range on a target >= V.
void cross_entropy_forward(float* loss, const float* logits, const int32_t* targets, int64_t N, int64_t V);
// dloss (N), logits (N, V), targets (N) -> dlogits (N, V) = (softmax - onehot) * dloss
void cross_entropy_backward(float* dlogits, const float* dloss, const float* logits, const int32_t* targets, int64_t N,
                            int64_t V);

}  // namespace anvil::cpu
