// hidden (N, H), weight (V, H), targets (N), old?, ref?, rollout? (N), advantages (B), mask (N)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (11), logprob (N), entropy (N)
//
// Liger-style (FusedLinearCrossEntropy / FusedLinearGRPOLoss): the rows in the loss are taken
// a block of nb at a time, and each block's gradient is finished before the next begins. One
// OpenMP region per block; thread t always owns the same share [v0, v1) of the vocabulary and
// runs its own single-threaded sgemms on it (as linear_logprob.cpp does with its tiles):
//   1. z[:, v0:v1] (nb, V share) = hidden_block @ weight[v0:v1]^T / T, folded into an
//      online-softmax state per row                                         -- barrier
//   2. one thread merges the row states (log-sum-exp, entropy, log-prob) and runs the GRPO
//      token math (grpo_token.h, as grpo_loss does) -> dlogprob, dentropy of each row
//   3. z share -> dL/dz in place, then dweight[v0:v1] += dz^T @ hidden_block / T (rows it owns)
//      and its part of dhidden_block = dz @ weight[v0:v1] / T             -- barrier
//   4. the dhidden parts are summed in thread order into the block's rows
// Three matrix products per block where the two-pass path (forward, grpo_loss, backward) needs
// four. Rows outside the loss (mask 0, or no target) are never gathered: prompt and padding
// rows cost nothing. Extra memory: the nb x V logits block (at most kLogitsBudget floats, kept
// between calls) + (1 + threads) x nb x H + O(N), whatever N is. Deterministic for a given
// thread count: fixed blocks, vocabulary shares and merge orders; the stats are summed in row
// order at the end.
#include "anvil/linear_grpo_loss.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "grpo_token.h"
#include "lm_head_tiles.h"
#include "online_softmax.h"

namespace anvil::cpu {

namespace {

// Floats of logits per token block (32 MiB): 256 rows at V = 32000. Measured at N=512, H=512,
// V=32000: 128-row blocks are about 25% slower (shorter sgemms), 512-row blocks no faster.
constexpr int64_t kLogitsBudget = 8 << 20;
constexpr int64_t kMaxBlock = 256, kMinBlock = 16;
constexpr int64_t kChunk = 2048;  // softmax chunk: stays in L1 between its two reads

// The logits block, kept from call to call (the op's one large buffer): faulting in tens of MiB
// of fresh pages on every call costs more than the block's sgemm on a loaded machine.
float* logits_workspace(size_t n) {
  static thread_local std::vector<float> ws;
  if (ws.size() < n) {
    ws = {};
    ws.resize(n);
  }
  return ws.data();
}

}  // namespace

void linear_grpo_loss(float* dhidden, float* dweight, float* stats, float* logprob, float* entropy,
                      const float* hidden, const float* weight, const int32_t* targets, const float* old_logprob,
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

  const int64_t n_act = static_cast<int64_t>(rows.size());
  const int64_t nb_max = std::min(n_act, std::clamp<int64_t>(kLogitsBudget / V / 8 * 8, kMinBlock, kMaxBlock));
  const int nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads(), V / 64)));
  std::vector<float> hb(nb_max * H), dh_part(static_cast<size_t>(nthreads) * nb_max * H);
  float* z = logits_workspace(static_cast<size_t>(nb_max * V));
  std::vector<int32_t> tg(nb_max);
  std::vector<float> lse_b(nb_max), ent_b(nb_max), lp_b(nb_max), old_b(nb_max), roll_b(nb_max), r_b(nb_max),
      et_b(nb_max), dlp_b(nb_max), dent_b(nb_max);

  std::vector<OnlineSoftmax> st(static_cast<size_t>(nthreads) * nb_max);
  BlasSingleThreaded blas_guard(nthreads > 1);  // one sgemm per thread, each on its calling thread
  for (int64_t r0 = 0; r0 < n_act; r0 += nb_max) {
    const int64_t nb = std::min(nb_max, n_act - r0);
    const int64_t* rb = rows.data() + r0;
    int parts = 1;  // the team actually given (1 when nested in an outer parallel region)
#pragma omp parallel num_threads(nthreads)
    {
      const int t = thread_id(), team = team_size();
      const int64_t v0 = V * t / team, v1 = V * (t + 1) / team, vt = v1 - v0;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < nb; r++) {
        std::copy(hidden + rb[r] * H, hidden + (rb[r] + 1) * H, hb.data() + r * H);
        tg[r] = targets[rb[r]];
      }
      // 1. the thread's vocabulary share of the block's logits, folded per row
      sgemm(false, true, nb, vt, H, inv_t, hb.data(), H, weight + v0 * H, H, 0.0f, z + v0, V);
      for (int64_t r = 0; r < nb; r++) {
        OnlineSoftmax& s = st[static_cast<size_t>(t) * nb_max + r];
        s = OnlineSoftmax{};
        for (int64_t c = v0; c < v1; c += kChunk) online_update(s, z + r * V + c, std::min(kChunk, v1 - c), 1.0f);
      }
#pragma omp barrier
      // 2. log-prob, entropy and the GRPO gradient of each row (a few flops per row)
#pragma omp single
      {
        parts = team;
        for (int64_t r = 0; r < nb; r++) {
          OnlineSoftmax s = st[r];
          for (int k = 1; k < team; k++) s.merge(st[static_cast<size_t>(k) * nb_max + r]);
          const int64_t i = rb[r];
          lse_b[r] = s.lse();
          ent_b[r] = s.entropy();
          lp_b[r] = z[r * V + tg[r]] - lse_b[r];
          logprob[i] = lp_b[r];
          entropy[i] = ent_b[r];
          old_b[r] = old_of(i);
          if (rollout_logprob) roll_b[r] = rollout_logprob[i];
        }
        if (old_logprob) exp_diff(r_b.data(), lp_b.data(), old_b.data(), nb);
        else std::fill(r_b.begin(), r_b.begin() + nb, 1.0f);
        if (o.tis_cap > 0) exp_diff(et_b.data(), old_b.data(), roll_b.data(), nb);
        for (int64_t r = 0; r < nb; r++) {
          const int64_t i = rb[r];
          token(i, r_b[r], et_b[r]);
          const double wt = mask[i] / weights.denominator(i / T);
          // rounded as grpo_loss's output, then scaled as a scale() of it would be
          dlp_b[r] = static_cast<float>(wt * toks[i].dlogprob) * loss_scale;
          dent_b[r] = static_cast<float>(wt * toks[i].dentropy) * loss_scale;
        }
      }
      // 3. dL/dz in place on the thread's share, then its part of both gradient products:
      //    the dweight rows of its share (owned), and a part of dhidden_block
      for (int64_t r = 0; r < nb; r++)
        softmax_grad_tile(z + r * V + v0, r, 1, v0, vt, tg.data(), lse_b.data(), ent_b.data(), dlp_b.data(), dent_b.data());
      sgemm(false, false, nb, H, vt, inv_t, z + v0, V, weight + v0 * H, H, 0.0f, dh_part.data() + t * nb_max * H, H);
      sgemm(true, false, vt, H, nb, inv_t, z + v0, V, hb.data(), H, 1.0f, dweight + v0 * H, H);
#pragma omp barrier
#pragma omp for schedule(static)
      for (int64_t r = 0; r < nb; r++) {
        float* out = dhidden + rb[r] * H;
        std::copy(dh_part.data() + r * H, dh_part.data() + (r + 1) * H, out);
        for (int k = 1; k < parts; k++)
          for (int64_t h = 0; h < H; h++) out[h] += dh_part[(k * nb_max + r) * H + h];
      }
    }
  }

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

}  // namespace anvil::cpu
