// hidden (N, H), weight (V, H), targets (N), old?, ref?, rollout? (N), advantages (B), mask (N)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (11), logprob (N), entropy (N)
//
// The one-pass LM head (lm_head_one_pass.h) with the GRPO token math (grpo_token.h, as
// grpo_loss runs it) as each block's row gradient: a token's gradient needs only its own
// log-prob and entropy and an aggregation weight the mask fixes in advance. Rows outside the
// loss (mask 0, or no target) are never gathered: prompt and padding rows cost nothing. The
// stats are summed in row order at the end: deterministic for a given thread count.
#include "anvil/linear_grpo_loss.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "grpo_token.h"
#include "lm_head_one_pass.h"

namespace anvil::cpu {

namespace {

template <class TW>
void linear_grpo_loss_impl(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                           const float* hidden, const TW* weight, const int32_t* targets, const float* old_logprob,
                           const float* ref_logprob, const float* rollout_logprob, const float* advantages,
                           const float* mask, int64_t H, int64_t V, float temperature, float loss_scale,
                           const GrpoOptions& o) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_grpo_options(o, ref_logprob, rollout_logprob, true);
  const int64_t B = o.B, T = o.T, N = B * T;
  check_targets(targets, N, V);
  std::fill(dhidden, dhidden + N * H, 0.0f);
  std::fill(logprob, logprob + N, 0.0f);
  std::fill(entropy, entropy + N, 0.0f);
  const GrpoWeights weights(mask, o);
  const float inv_t = 1.0f / temperature;

  // Rows in the loss; those with a target get logits, the others keep logprob = entropy = 0.
  std::vector<int64_t> rows;
  std::vector<char> counted(N, 0);
  for (int64_t b = 0; b < B; b++) {
    if (weights.denominator(b) == 0.0) continue;
    for (int64_t t = 0; t < T; t++) {
      const int64_t i = b * T + t;
      if (mask[i] == 0.0f) continue;
      counted[i] = 1;
      if (targets[i] >= 0) rows.push_back(i);
    }
  }
  // Per counted row: its ratio and token terms, summed into the stats at the end in row order.
  std::vector<float> ratio(N, 1.0f), e_tis(N, 0.0f);
  std::vector<GrpoToken> toks(N);
  const auto token = [&](int64_t i, float r, float et) {
    toks[i] = grpo_token(o, advantages[i / T], logprob[i], r, et, ref_logprob ? ref_logprob + i : nullptr, entropy[i]);
    ratio[i] = r;
    e_tis[i] = et;
  };
  const auto old_of = [&](int64_t i) { return old_logprob ? old_logprob[i] : logprob[i]; };

  // Each block's row gradient: the GRPO token math on its log-probs, weighted and scaled
  std::vector<float> old_b, roll_b, r_b, et_b;
  const auto row_grad = [&](const int64_t* rb, int64_t nb, const float* lp_b, const float*, float* dlp_b, float* dent_b) {
    old_b.resize(nb), roll_b.resize(nb), r_b.resize(nb), et_b.resize(nb);
    for (int64_t r = 0; r < nb; r++) {
      old_b[r] = old_of(rb[r]);
      if (rollout_logprob) roll_b[r] = rollout_logprob[rb[r]];
    }
    if (old_logprob) exp_diff(r_b.data(), lp_b, old_b.data(), nb);
    else std::fill(r_b.begin(), r_b.end(), 1.0f);
    if (o.tis_cap > 0) exp_diff(et_b.data(), old_b.data(), roll_b.data(), nb);
    for (int64_t r = 0; r < nb; r++) {
      const int64_t i = rb[r];
      token(i, r_b[r], et_b[r]);
      const double wt = mask[i] / weights.denominator(i / T);
      // rounded as grpo_loss's output, then scaled as a scale() of it would be
      dlp_b[r] = static_cast<float>(wt * toks[i].dlogprob) * loss_scale;
      dent_b[r] = static_cast<float>(wt * toks[i].dentropy) * loss_scale;
    }
    return true;
  };
  lm_head_one_pass(dhidden, dweight, logprob, entropy, hidden, weight, targets, rows.data(), static_cast<int64_t>(rows.size()),
                   H, V, inv_t, row_grad);

  // Counted rows without a target: logprob = entropy = 0 enter the loss as they would in grpo_loss.
  for (int64_t i = 0; i < N; i++) {
    if (!counted[i] || targets[i] >= 0) continue;
    float r = 1.0f, et = 0.0f;
    const float lp = 0.0f, old = old_of(i);
    if (old_logprob) exp_diff(&r, &lp, &old, 1);
    if (o.tis_cap > 0) exp_diff(&et, &old, rollout_logprob + i, 1);
    token(i, r, et);
  }

  GrpoStatsSum sum;
  for (int64_t i = 0; i < N; i++)
    if (counted[i]) sum.add(toks[i], mask[i], mask[i] / weights.denominator(i / T), ratio[i], entropy[i]);
  sum.write(stats, weights.total_mass());
}

}  // namespace

void linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                      const float* hidden, const float* weight, const int32_t* targets, const float* old_logprob,
                      const float* ref_logprob, const float* rollout_logprob, const float* advantages,
                      const float* mask, int64_t H, int64_t V, float temperature, float loss_scale,
                      const GrpoOptions& o) {
  linear_grpo_loss_impl(dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, old_logprob, ref_logprob,
                        rollout_logprob, advantages, mask, H, V, temperature, loss_scale, o);
}
void linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                      const float* hidden, const uint16_t* weight, const int32_t* targets, const float* old_logprob,
                      const float* ref_logprob, const float* rollout_logprob, const float* advantages,
                      const float* mask, int64_t H, int64_t V, float temperature, float loss_scale,
                      const GrpoOptions& o) {
  linear_grpo_loss_impl(dhidden, dweight, stats, logprob, entropy, hidden, weight, targets, old_logprob, ref_logprob,
                        rollout_logprob, advantages, mask, H, V, temperature, loss_scale, o);
}

}  // namespace anvil::cpu
