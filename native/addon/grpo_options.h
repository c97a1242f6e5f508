// The GRPO loss options as grpoLoss and linearGrpoLoss receive them: eleven arguments from
// index `first` on (B, T, epsLow, epsHigh, dualClip, beta, kl, entropyCoef, tisCap,
// aggregation, maxCompletionLength), with the kernel codes of check.ts's KL_CODE / AGG_CODE.
#pragma once
#include "anvil/grpo_loss.h"
#include "args.h"

namespace anvil {

inline cpu::GrpoOptions grpo_options(const Napi::CallbackInfo& info, size_t first) {
  cpu::GrpoOptions o;
  o.B = integer(info, first, "B");
  o.T = integer(info, first + 1, "T");
  o.eps_low = num(info, first + 2, "epsLow");
  o.eps_high = num(info, first + 3, "epsHigh");
  o.dual_clip = num(info, first + 4, "dualClip");
  o.beta = num(info, first + 5, "beta");
  auto kl = integer(info, first + 6, "kl");
  if (kl > 2) throw ArgError("kl must be 0 (k1), 1 (k2) or 2 (k3)", true);
  o.kl = static_cast<cpu::KlEstimator>(kl);
  o.entropy_coef = num(info, first + 7, "entropyCoef");
  o.tis_cap = num(info, first + 8, "tisCap");
  auto agg = integer(info, first + 9, "aggregation");
  if (agg > 3) throw ArgError("aggregation must be 0..3", true);
  o.aggregation = static_cast<cpu::LossAggregation>(agg);
  o.max_completion_length = integer(info, first + 10, "maxCompletionLength");
  if (!(o.eps_low >= 0 && o.eps_low < 1)) throw ArgError("epsLow must be in [0, 1)", true);
  if (!(o.eps_high >= 0)) throw ArgError("epsHigh must be >= 0", true);
  if (!(o.tis_cap >= 0)) throw ArgError("tisCap must be >= 0", true);
  return o;
}

}  // namespace anvil
