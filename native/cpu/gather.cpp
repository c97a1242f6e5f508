// Row gather.
#include "anvil/gather.h"

#include <cstring>

#include "anvil/ids.h"

namespace anvil::cpu {

// inp (N, C), idx (M) -> out (M, C)
void gather_rows(float* out, const float* inp, const int32_t* idx, int64_t M, int64_t N, int64_t C) {
  check_ids(idx, M, N, "idx", "N");
#pragma omp parallel for schedule(static) if (M * C >= (1 << 16))
  for (int64_t m = 0; m < M; m++) std::memcpy(out + m * C, inp + static_cast<int64_t>(idx[m]) * C, C * sizeof(float));
}

}  // namespace anvil::cpu
