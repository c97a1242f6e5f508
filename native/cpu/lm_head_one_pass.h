// The one-pass LM head behind linear_grpo_loss.cpp and linear_logprob_forward_backward
// (Liger-kernel style): the rows in the loss are taken a block of nb at a time, and each block's
// gradient is finished before the next begins, so its logits are made once (3 matrix products
// per block where a forward then a backward need 4). One OpenMP region per block; thread t owns
// the same share [v0, v1) of the vocabulary in every block and runs its own single-threaded
// sgemms on its (nb, v1 - v0) tile, contiguous so that a bf16 weight widens as it is packed:
//   1. tile = hidden_block @ weight[v0:v1]^T / T, folded into an online-softmax state per row
//   2. the calling thread merges the row states (log-sum-exp, entropy, log-prob) and asks the
//      caller for each row's dL/dlogprob and dL/dentropy (row_grad: a few flops per row, or a
//      JavaScript callback: it runs on the thread that called the op)                  -- barrier
//   3. tile -> dL/dz in place; dweight[v0:v1] += dz^T @ hidden_block / T (rows it owns) and
//      its part of dhidden_block = dz @ weight[v0:v1] / T                             -- barrier
//   4. the dhidden parts are summed in thread order into the block's rows
// Extra memory: the nb x V logits block (at most kLogitsBudget floats, kept between calls) +
// (1 + threads) x nb x H + O(nb), whatever N is. Deterministic for a given thread count.
// Private to native/cpu.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "lm_head_tiles.h"
#include "online_softmax.h"

namespace anvil::cpu {

namespace one_pass {
// Floats of logits per token block (32 MiB): 256 rows at V = 32000. Measured at N=512, H=512,
// V=32000: 128-row blocks are about 25% slower (shorter sgemms), 512-row blocks no faster.
constexpr int64_t kLogitsBudget = 8 << 20;
constexpr int64_t kMaxBlock = 256, kMinBlock = 16;
constexpr int64_t kChunk = 2048;  // softmax chunk: stays in L1 between its two reads

// The logits block, kept from call to call (the op's one large buffer): faulting in tens of MiB
// of fresh pages on every call costs more than the block's sgemm on a loaded machine.
inline float* workspace(size_t n) {
  static thread_local std::vector<float> ws;
  if (ws.size() < n) {
    ws = {};
    ws.resize(n);
  }
  return ws.data();
}
// Rows per token block at vocabulary V.
inline int64_t block_rows(int64_t V) { return std::clamp<int64_t>(kLogitsBudget / V / 8 * 8, kMinBlock, kMaxBlock); }
}  // namespace one_pass

// rows (n): the rows to score, each with a target in [0, V). Writes logprob, entropy and the
// dhidden row of each (other rows untouched) and adds to dweight (null: a frozen head).
// row_grad(rb, nb, lp, ent, dlp, dent) is called once per block on the calling thread: rb are
// the block's row indices, lp / ent their log-probs and entropies; it writes dlp / dent and
// returns false to stop (no gradient of that block is applied; the op returns false).
template <class TW, class RowGrad>
bool lm_head_one_pass(float* dhidden, float* dweight, float* logprob, float* entropy, const float* hidden,
                      const TW* weight, const int32_t* targets, const int64_t* rows, int64_t n, int64_t H, int64_t V,
                      float inv_t, RowGrad&& row_grad) {
  using namespace one_pass;
  if (n == 0) return true;
  const int64_t nb_max = std::min(n, block_rows(V));
  const int nthreads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(max_threads(), V / 64)));
  std::vector<float> hb(nb_max * H), dh_part(static_cast<size_t>(nthreads) * nb_max * H);
  float* z = workspace(static_cast<size_t>(nb_max * V));
  std::vector<int32_t> tg(nb_max);
  std::vector<float> lse_b(nb_max), ent_b(nb_max), lp_b(nb_max), tz_b(nb_max), dlp_b(nb_max), dent_b(nb_max);
  std::vector<OnlineSoftmax> st(static_cast<size_t>(nthreads) * nb_max);
  BlasSingleThreaded blas_guard(nthreads > 1);  // one sgemm per thread, each on its calling thread
  for (int64_t r0 = 0; r0 < n; r0 += nb_max) {
    const int64_t nb = std::min(nb_max, n - r0);
    const int64_t* rb = rows + r0;
    int parts = 1;  // the team actually given (1 when nested in an outer parallel region)
    bool go = true;
#pragma omp parallel num_threads(nthreads)
    {
      const int t = thread_id(), team = team_size();
      const int64_t v0 = V * t / team, v1 = V * (t + 1) / team, vt = v1 - v0;
      float* zt = z + nb * v0;  // this thread's (nb, vt) tile
#pragma omp for schedule(static)
      for (int64_t r = 0; r < nb; r++) {
        std::copy(hidden + rb[r] * H, hidden + (rb[r] + 1) * H, hb.data() + r * H);
        tg[r] = targets[rb[r]];
      }
      // 1. the thread's vocabulary share of the block's logits, folded per row
      tile_gemm(zt, hb.data(), weight + v0 * H, nb, vt, H, false, true, false, inv_t);
      for (int64_t r = 0; r < nb; r++) {
        OnlineSoftmax& s = st[static_cast<size_t>(t) * nb_max + r];
        s = OnlineSoftmax{};
        for (int64_t c = 0; c < vt; c += kChunk) online_update(s, zt + r * vt + c, std::min(kChunk, vt - c), 1.0f);
        if (tg[r] >= v0 && tg[r] < v1) tz_b[r] = zt[r * vt + tg[r] - v0];
      }
#pragma omp barrier
      // 2. log-prob and entropy of each row, and the caller's gradient in them
#pragma omp master
      {
        parts = team;
        for (int64_t r = 0; r < nb; r++) {
          OnlineSoftmax s = st[r];
          for (int k = 1; k < team; k++) s.merge(st[static_cast<size_t>(k) * nb_max + r]);
          lse_b[r] = s.lse();
          ent_b[r] = s.entropy();
          lp_b[r] = tz_b[r] - lse_b[r];
          logprob[rb[r]] = lp_b[r];
          entropy[rb[r]] = ent_b[r];
        }
        go = row_grad(rb, nb, lp_b.data(), ent_b.data(), dlp_b.data(), dent_b.data());
      }
#pragma omp barrier
      if (go) {  // 3. dL/dz in place on the thread's tile, then its part of both gradient products
        softmax_grad_tile(zt, 0, nb, v0, vt, tg.data(), lse_b.data(), ent_b.data(), dlp_b.data(), dent_b.data());
        tile_gemm(dh_part.data() + t * nb_max * H, zt, weight + v0 * H, nb, H, vt, false, false, false, inv_t);
        if (dweight) tile_gemm(dweight + v0 * H, zt, hb.data(), vt, H, nb, true, false, true, inv_t);
      }
#pragma omp barrier
      // 4. dhidden rows = the sum of the threads' parts, in thread order
#pragma omp for schedule(static)
      for (int64_t r = 0; r < (go ? nb : 0); r++) {
        float* out = dhidden + rb[r] * H;
        std::copy(dh_part.data() + r * H, dh_part.data() + (r + 1) * H, out);
        for (int k = 1; k < parts; k++)
          for (int64_t h = 0; h < H; h++) out[h] += dh_part[(k * nb_max + r) * H + h];
      }
    }
    if (!go) return false;
  }
  return true;
}

}  // namespace anvil::cpu
