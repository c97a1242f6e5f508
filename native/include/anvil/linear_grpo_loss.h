// Fused LM head + log-prob + entropy + GRPO loss, forward and backward in one pass: the
// per-token GRPO gradient needs only that token's log-prob and entropy and aggregation weights
// the mask fixes in advance, so each token block's logits are made once (one sgemm), turned
// into dlogits in place and consumed by the two gradient sgemms: 3 matrix products where
// linear_logprob_forward + grpo_loss + linear_logprob_backward make 4, and (N, V) never exists.
// N = B * T tokens, H = hidden size, V = vocabulary. Loss semantics: anvil/grpo_loss.h.
#pragma once
#include <cstdint>

#include "anvil/grpo_loss.h"

namespace anvil::cpu {

// hidden (N, H), weight (V, H), targets (N), old_logprob? (N), ref_logprob? (N),
// rollout_logprob? (N), advantages (B), mask (N)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (kGrpoStats), logprob (N), entropy (N)
// Equals, up to float rounding:
//   linear_logprob_forward -> logprob, entropy
//   grpo_loss(logprob, old_logprob or logprob, ..., entropy) -> stats, dlogprob, dentropy
//   dlogprob, dentropy *= loss_scale
//   linear_logprob_backward(dlogprob, dentropy) -> dhidden, dweight
// old_logprob null: the current policy is the old one (ratio 1; the importance weight uses
// logprob in its place). loss_scale scales the gradients, not the stats (a micro-batch's share
// of the batch loss). Rows with mask 0 (or an empty denominator) are not computed: logprob,
// entropy and dhidden are 0 there. Rows with target < 0: logprob 0, entropy 0, no dhidden.
// dweight may be null (a frozen head: its products are skipped); the second overload takes the
// weight stored in bf16 (uint16_t bits), widened to f32 as the sgemms pack it.
void linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                      const float* hidden, const float* weight, const int32_t* targets, const float* old_logprob,
                      const float* ref_logprob, const float* rollout_logprob, const float* advantages,
                      const float* mask, int64_t H, int64_t V, float temperature, float loss_scale,
                      const GrpoOptions& opts);

void linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                      const float* hidden, const uint16_t* weight, const int32_t* targets, const float* old_logprob,
                      const float* ref_logprob, const float* rollout_logprob, const float* advantages,
                      const float* mask, int64_t H, int64_t V, float temperature, float loss_scale,
                      const GrpoOptions& opts);

}  // namespace anvil::cpu
