// AdamW with decoupled weight decay, matching torch.optim.AdamW (amsgrad=False, maximize=False).
#pragma once
#include <cstdint>

namespace anvil::cpu {

// param, grad, m, v (n): one step in place; step is 1-based (bias correction).
// Hyperparameters are doubles: like Python scalars, derived constants are formed in double
// and rounded to float once.
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
           double eps, double weight_decay, int64_t step);

}  // namespace anvil::cpu
