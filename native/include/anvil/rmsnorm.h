// RMSNorm (Llama / Qwen): out = inp * rstd * weight, rstd = 1 / sqrt(mean(inp^2) + eps).
// N = rows, C = channels. Qwen3's q/k-norm uses it with N = rows * heads, C = head dim.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// inp (N, C), weight (C) -> out (N, C), rstd (N)
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int64_t C, float eps);
// dout (N, C), inp (N, C), weight (C), rstd (N) -> dinp (N, C) (overwritten), dweight (C) +=
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t N, int64_t C);

}  // namespace anvil::cpu
