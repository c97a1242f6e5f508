// Bias add and its gradient. N = rows, C = channels.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// out (N, C) += bias (C), in place
void bias_add(float* out, const float* bias, int64_t N, int64_t C);
// dout (N, C) -> dbias (C) += column sums
void bias_backward(float* dbias, const float* dout, int64_t N, int64_t C);

}  // namespace anvil::cpu
