// Elementwise ops. They are memory-bound: one OpenMP team only pays off on large buffers,
// so small calls (biases, norms) stay on the calling thread.
#include "anvil/elementwise.h"

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
// float sum would lose most of its digits.
double sum_squares(const float* t, int64_t n) {
  double total = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : total) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i++) {
    double x = t[i];
    total += x * x;
  }
  return total;
}

}  // namespace anvil::cpu
