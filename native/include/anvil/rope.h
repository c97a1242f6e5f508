// Rotary position embedding, rotate-half (NeoX / Hugging Face) layout.
// N = tokens, nh = heads, hd = head dim (even). Frequency i in [0, hd/2) rotates the pair
// (x[i], x[i + hd/2]) by angle pos * theta^(-2i/hd).
#pragma once
#include <cstdint>

namespace anvil {

// inp (N, nh, hd), pos (N) -> out (N, nh, hd); out may alias inp
void rope_forward(float* out, const float* inp, const int32_t* pos, int64_t N, int64_t nh, int64_t hd, double theta);
// dout (N, nh, hd), pos (N) -> dinp (N, nh, hd) (the inverse rotation); dinp may alias dout
void rope_backward(float* dinp, const float* dout, const int32_t* pos, int64_t N, int64_t nh, int64_t hd, double theta);

}  // namespace anvil
