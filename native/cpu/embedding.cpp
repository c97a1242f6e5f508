// Embedding lookup (a row gather) and its scatter-add backward. The table may be stored in bf16
// (a frozen embedding): rows are widened to f32 as they are gathered.
#include "anvil/embedding.h"

#include <algorithm>
#include <cstring>

#include "anvil/ids.h"
#include "bf16.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace anvil::cpu {

namespace {
// ids (N), table (V, C) of f32 or bf16 -> out (N, C)
template <class T>
void gather_rows_f32(float* out, const int32_t* ids, const T* table, int64_t N, int64_t C, int64_t V) {
  check_ids(ids, N, V, "ids", "V");
#pragma omp parallel for schedule(static) if (N * C >= (1 << 16))
  for (int64_t n = 0; n < N; n++) widen_row(out + n * C, table + static_cast<int64_t>(ids[n]) * C, C);
}
}  // namespace

// ids (N), table (V, C) -> out (N, C)
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C, int64_t V) {
  gather_rows_f32(out, ids, table, N, C, V);
}
void embedding_forward(float* out, const int32_t* ids, const uint16_t* table, int64_t N, int64_t C, int64_t V) {
  gather_rows_f32(out, ids, table, N, C, V);
}

// dout (N, C), ids (N) -> dtable (V, C) +=
// Repeated ids make a row-parallel scatter racy, so threads split the channels instead: each
// owns a column slice of dtable and walks all N tokens (deterministic, no atomics).
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C, int64_t V) {
  check_ids(ids, N, V, "ids", "V");
#pragma omp parallel if (N * C >= (1 << 16))
  {
    int64_t t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    // Slices are multiples of 16 floats so two threads never share a cache line.
    int64_t per = ((C + nt - 1) / nt + 15) / 16 * 16;
    int64_t c0 = std::min(C, t * per), c1 = std::min(C, c0 + per);
    for (int64_t n = 0; n < N; n++) {
      float* dst = dtable + static_cast<int64_t>(ids[n]) * C;
      const float* src = dout + n * C;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  }
}

}  // namespace anvil::cpu
