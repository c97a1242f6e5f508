// Row gather (select tokens, e.g. the last position of each sequence). M = picked rows.
#pragma once
#include <cstdint>

namespace anvil::cpu {

// inp (N, C), idx (M) i32 -> out (M, C) = inp[idx]. Throws std::out_of_range on idx outside [0, N).
void gather_rows(float* out, const float* inp, const int32_t* idx, int64_t M, int64_t N, int64_t C);

}  // namespace anvil::cpu
