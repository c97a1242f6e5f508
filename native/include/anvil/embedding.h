// Token embedding lookup and its gradient. N = tokens, V = vocabulary, C = channels.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// ids (N) i32, table (V, C) -> out (N, C). Throws std::out_of_range on an id outside [0, V).
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C, int64_t V);
// The same with the table stored in bf16 (uint16_t bits): rows are widened to f32.
void embedding_forward(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t C, int64_t V);
// dout (N, C), ids (N) -> dtable (V, C) +=. Throws std::out_of_range on an id outside [0, V).
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C, int64_t V);

}  // namespace anvil::cpu
