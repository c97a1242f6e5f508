// Elementwise ops. They are memory-bound: one OpenMP team only pays off on large buffers,
// so small calls (biases, norms) stay on the calling thread.
#include "anvil/elementwise.h"

#include <algorithm>
#include <vector>

namespace anvil::cpu {

namespace {
constexpr int64_t kParallelMin = 1 << 16;
}

// a (n), b (n) -> out (n)
void add(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// dst (n) += alpha * src (n)
void accumulate(float* dst, const float* src, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) dst[i] += alpha * src[i];
}

// t (n) *= alpha
void scale(float* t, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) t[i] *= alpha;
}

// t (n) -> sum(t^2). Double accumulation: the global grad norm sums ~1e8 squares, where a
// float sum would lose most of its digits. Fixed chunks summed in chunk order, so the result
// does not depend on which thread finishes first (a resumed run must reproduce the original).
double sum_squares(const float* t, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = c * kChunk; i < end; i++) acc += static_cast<double>(t[i]) * t[i];
    part[c] = acc;
  }
  double total = 0.0;
  for (double p : part) total += p;
  return total;
}

}  // namespace anvil::cpu
