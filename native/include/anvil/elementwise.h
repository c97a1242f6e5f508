// Elementwise ops on flat f32 buffers (the optimizer and residual glue of the model).
#pragma once
#include <cstdint>

namespace anvil::cpu {

// a (n), b (n) -> out (n) = a + b; out may alias a or b
void add(float* out, const float* a, const float* b, int64_t n);
// dst (n) += alpha * src (n)
void accumulate(float* dst, const float* src, float alpha, int64_t n);
// t (n) *= alpha, in place
void scale(float* t, float alpha, int64_t n);
// t (n) -> sum(t^2), accumulated in double (the caller adds it to out (1))
double sum_squares(const float* t, int64_t n);

}  // namespace anvil::cpu
