// SwiGLU activation of the MLP: out = silu(gate) * up, silu(g) = g * sigmoid(g).
#pragma once
#include <cstdint>

namespace anvil::cpu {

// gate (n), up (n) -> out (n)   (n = N * C)
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
// dout (n), gate (n), up (n) -> dgate (n), dup (n) (overwritten)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

}  // namespace anvil::cpu
