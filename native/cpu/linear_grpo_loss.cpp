// hidden (N, H), weight (V, H), targets (N), old?, ref?, rollout? (N), advantages (B), mask (N)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=, stats (11), logprob (N), entropy (N)
//
// Token blocks one after the other; all threads work on each block, split over vocab tiles
// (a thread always gets the same tiles, so it owns those rows of dweight):
//   1. z (nb, V) = hidden_block @ weight^T / T, tile by tile, each tile folded into an
//      online-softmax state per row;
//   2. one thread merges the states (lse, entropy, logprob) and runs the GRPO token math
//      (grpo_token.h, as grpo_loss does) -> dlogprob, dentropy of the block;
//   3. each tile turns into dL/dz in place, then dweight_tile += dz^T @ hidden_block / T and
//      the thread's dhidden_block += dz @ weight_tile / T; the threads' dhidden blocks are
//      summed in thread order.
// Only rows that carry gradient (mask != 0, target >= 0) are gathered into blocks: prompt and
// padding rows cost nothing. Extra memory: nb x V floats of logits (nb = kLogitsBudget / V,
// so 16 MiB whatever the vocabulary) + threads x nb x H + O(N). Deterministic for a given
// thread count (fixed tile ownership, fixed merge orders, stats summed in row order).
#include "anvil/linear_grpo_loss.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "grpo_token.h"
#include "lm_head_tiles.h"
#include "online_softmax.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kLogitsBudget = 4 << 20;  // floats of logits per block (16 MiB)
constexpr int64_t kMaxBlock = 256, kMinBlock = 16;
constexpr int64_t kVocabTile = 2048;

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
  // Vocab tiles: at most kVocabTile wide, and at least one per thread when V allows.
  const int64_t per_thread = (V + max_threads() - 1) / max_threads();
  const int64_t vt_nom = std::min(kVocabTile, (per_thread + 15) / 16 * 16);
  const int64_t ntiles = (V + vt_nom - 1) / vt_nom;
  const int nthreads = static_cast<int>(std::min<int64_t>(max_threads(), ntiles));

  std::vector<float> hb(nb_max * H), z(nb_max * V), dh_priv(static_cast<size_t>(nthreads) * nb_max * H);
  std::vector<OnlineSoftmax> st(ntiles * nb_max);
  std::vector<int32_t> tg(nb_max);
  std::vector<float> zt(nb_max), lse_b(nb_max), ent_b(nb_max), lp_b(nb_max), old_b(nb_max), roll_b(nb_max),
      r_b(nb_max), et_b(nb_max), dlp_b(nb_max), dent_b(nb_max);
  BlasSingleThreaded blas_guard(nthreads > 1);

  if (n_act > 0) {
#pragma omp parallel num_threads(nthreads)
    {
      float* dh_mine = dh_priv.data() + static_cast<size_t>(thread_id()) * nb_max * H;
      for (int64_t r0 = 0; r0 < n_act; r0 += nb_max) {
        const int64_t nb = std::min(nb_max, n_act - r0);
        const int64_t* rb = rows.data() + r0;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < nb; r++) {
          std::copy(hidden + rb[r] * H, hidden + (rb[r] + 1) * H, hb.data() + r * H);
          tg[r] = targets[rb[r]];
        }
        // 1. logits tile by tile (tile k holds vocab v0.. at z + v0 * nb), folded per row
#pragma omp for schedule(static, 1)
        for (int64_t k = 0; k < ntiles; k++) {
          const int64_t v0 = k * vt_nom, vt = std::min(vt_nom, V - v0);
          float* zk = z.data() + v0 * nb;
          tile_gemm(zk, hb.data(), weight + v0 * H, nb, vt, H, false, true, false, inv_t);
          for (int64_t r = 0; r < nb; r++) {
            st[k * nb + r] = OnlineSoftmax{};
            online_update(st[k * nb + r], zk + r * vt, vt, 1.0f);
            if (tg[r] >= v0 && tg[r] < v0 + vt) zt[r] = zk[r * vt + tg[r] - v0];
          }
        }
        // 2. log-prob, entropy and the GRPO gradient of each row
#pragma omp single
        {
          for (int64_t r = 0; r < nb; r++) {
            OnlineSoftmax s = st[r];
            for (int64_t k = 1; k < ntiles; k++) s.merge(st[k * nb + r]);
            const int64_t i = rb[r];
            lse_b[r] = s.lse();
            ent_b[r] = s.entropy();
            lp_b[r] = zt[r] - lse_b[r];
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
            // rounded as grpo_loss then a scale() of its outputs would round them
            dlp_b[r] = static_cast<float>(wt * toks[i].dlogprob) * loss_scale;
            dent_b[r] = static_cast<float>(wt * toks[i].dentropy) * loss_scale;
          }
        }
        // 3. dL/dz in place, then both gradient products
        std::fill(dh_mine, dh_mine + nb * H, 0.0f);
#pragma omp for schedule(static, 1)
        for (int64_t k = 0; k < ntiles; k++) {
          const int64_t v0 = k * vt_nom, vt = std::min(vt_nom, V - v0);
          float* zk = z.data() + v0 * nb;
          softmax_grad_tile(zk, 0, nb, v0, vt, tg.data(), lse_b.data(), ent_b.data(), dlp_b.data(), dent_b.data());
          tile_gemm(dweight + v0 * H, zk, hb.data(), vt, H, nb, true, false, true, inv_t);
          tile_gemm(dh_mine, zk, weight + v0 * H, nb, H, vt, false, false, true, inv_t);
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < nb; r++) {
          float* out = dhidden + rb[r] * H;
          for (int t = 0; t < nthreads; t++) {
            const float* part = dh_priv.data() + (static_cast<size_t>(t) * nb_max + r) * H;
            for (int64_t h = 0; h < H; h++) out[h] += part[h];
          }
        }
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
