// hidden (N, H), weight (V, H), targets (N) -> logprob (N), entropy (N), lse (N)
// dlogprob (N), dentropy (N) -> dhidden (N, H) (overwritten), dweight (V, H) +=
//
// Work unit = one vocab tile (kVocabTile rows of weight) against every token block, or, when the
// vocabulary has too few tiles to share out, one token block against every vocab tile. Threads
// take units (OpenMP), and each runs its own single-threaded sgemm (OpenBLAS pinned to one
// thread for the duration of the call, or the built-in sgemm) on a private logits tile: one
// threading layer, no hand-off between a BLAS pool and OpenMP between the matrix product and
// the softmax work.
//   forward : under the vocab split each thread keeps an online-softmax state per token for the
//             tiles it saw, merged at the end (log-sum-exp merge).
//   backward: a unit owns one output (dweight rows of its vocab tile, or dhidden rows of its
//             token block); its contribution to the other goes to a per-thread copy, summed
//             in thread order at the end.
// Extra memory: threads x (one logits tile of kTokBlock x kVocabTile floats + O(N) state), plus
// in the backward threads x (N x H) (vocab split) or threads x (V x H) (token split), and 2 x
// (N x H) when some rows carry no gradient (they are gathered out, see linear_logprob_backward). Logits are
// never larger than one tile. Forward and backward are deterministic for a given thread count.
//
// weight may be stored in bf16 (a frozen LM head / tied embedding): the tile sgemms widen it to
// f32 as they pack it. dweight may then be null: a frozen head needs no gradient, and its dW
// products are skipped.
#include "anvil/linear_logprob.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "lm_head_one_pass.h"
#include "lm_head_tiles.h"
#include "online_softmax.h"

namespace anvil::cpu {

namespace {

constexpr int64_t kTokBlock = 256;
constexpr int64_t kVocabTile = 2048;  // tile = 2 MiB of logits per thread

// Vocab tiles are the natural parallel unit (a thread owns its rows of dweight and keeps its
// tile of weight hot). Small vocabularies have too few tiles to share out; then the token
// blocks are split instead.
enum class Split { kVocab, kTokens };
Split choose_split(int64_t ntiles, int64_t nblocks) {
  return (ntiles >= max_threads() || ntiles >= nblocks) ? Split::kVocab : Split::kTokens;
}

template <class TW>
void forward_impl(float* logprob, float* entropy, float* lse, const float* hidden, const TW* weight,
                  const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  if (N == 0) return;
  const float inv_t = 1.0f / temperature;
  const int64_t ntiles = (V + kVocabTile - 1) / kVocabTile;
  const int64_t nblocks = (N + kTokBlock - 1) / kTokBlock;
  const Split split = choose_split(ntiles, nblocks);
  const int64_t units = split == Split::kVocab ? ntiles : nblocks;
  const int nthreads = static_cast<int>(std::min<int64_t>(max_threads(), units));
  // Online-softmax state per token: one copy per thread when threads share rows (vocab split).
  const int nstates = split == Split::kVocab ? nthreads : 1;
  std::vector<OnlineSoftmax> state(static_cast<size_t>(nstates) * N);
  std::vector<float> target_z(N, 0.0f);  // written by the one tile holding the target
  BlasSingleThreaded blas_guard(nthreads > 1);

#pragma omp parallel num_threads(nthreads)
  {
    OnlineSoftmax* st = state.data() + (split == Split::kVocab ? static_cast<size_t>(thread_id()) * N : 0);
    std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));
    // static schedule: which thread folds which tile is fixed, so lse is run-to-run identical
#pragma omp for schedule(static, 1)
    for (int64_t u = 0; u < units; u++) {
      const int64_t t0 = split == Split::kVocab ? u : 0, t1 = split == Split::kVocab ? u + 1 : ntiles;
      const int64_t b0 = split == Split::kVocab ? 0 : u, b1 = split == Split::kVocab ? nblocks : u + 1;
      for (int64_t tv = t0; tv < t1; tv++) {
        const int64_t v0 = tv * kVocabTile, vt = std::min(kVocabTile, V - v0);
        for (int64_t blk = b0; blk < b1; blk++) {
          const int64_t n0 = blk * kTokBlock, nb = std::min(kTokBlock, N - n0);
          // tile (nb, vt) = hidden[n0:n0+nb] @ weight[v0:v0+vt]^T / T
          tile_gemm(tile.data(), hidden + n0 * H, weight + v0 * H, nb, vt, H, false, true, false, inv_t);
          for (int64_t r = 0; r < nb; r++) {
            const float* z = tile.data() + r * vt;
            online_update(st[n0 + r], z, vt, 1.0f);
            const int64_t tgt = targets[n0 + r];
            if (tgt >= v0 && tgt < v0 + vt) target_z[n0 + r] = z[tgt - v0];
          }
        }
      }
    }
  }
#pragma omp parallel for schedule(static) if (N >= 4096)
  for (int64_t i = 0; i < N; i++) {
    OnlineSoftmax s = state[i];
    for (int k = 1; k < nstates; k++) s.merge(state[static_cast<size_t>(k) * N + i]);
    lse[i] = s.lse();
    const bool ignored = targets[i] < 0;
    logprob[i] = ignored ? 0.0f : target_z[i] - lse[i];
    entropy[i] = ignored ? 0.0f : s.entropy();
  }
}

// A subset of the rows (rows, n) gathered (hidden states, targets) and scored by the tiled
// forward, their logprob and entropy scattered back: the paths that take some rows two-pass.
// Extra memory: n x H floats + O(n).
struct Gathered {
  std::vector<float> h, lp, ent, lse;
  std::vector<int32_t> tg;
};
template <class TW>
Gathered score_rows(float* logprob, float* entropy, const float* hidden, const TW* weight, const int32_t* targets,
                    const int64_t* rows, int64_t n, int64_t H, int64_t V, float temperature) {
  Gathered g{std::vector<float>(static_cast<size_t>(n * H)), std::vector<float>(n), std::vector<float>(n),
             std::vector<float>(n), std::vector<int32_t>(n)};
  for (int64_t r = 0; r < n; r++) {
    std::copy(hidden + rows[r] * H, hidden + (rows[r] + 1) * H, g.h.data() + r * H);
    g.tg[r] = targets[rows[r]];
  }
  forward_impl(g.lp.data(), g.ent.data(), g.lse.data(), g.h.data(), weight, g.tg.data(), n, H, V, temperature);
  for (int64_t r = 0; r < n; r++) logprob[rows[r]] = g.lp[r], entropy[rows[r]] = g.ent[r];
  return g;
}

// The backward over N rows that all carry gradient; dhidden (N, H) is zero on entry. dweight
// null: no weight gradient (a frozen head).
template <class TW>
void backward_rows(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy, const float* hidden,
                   const TW* weight, const int32_t* targets, const float* lse, const float* entropy, int64_t N,
                   int64_t H, int64_t V, float inv_t) {
  const int64_t ntiles = (V + kVocabTile - 1) / kVocabTile;
  const int64_t nblocks = (N + kTokBlock - 1) / kTokBlock;
  const Split split = choose_split(ntiles, nblocks);
  const int64_t units = split == Split::kVocab ? ntiles : nblocks;
  const int nthreads = static_cast<int>(std::min<int64_t>(max_threads(), units));
  // Without dweight nothing is shared under the token split (each block owns its dhidden rows).
  const bool shared = nthreads > 1 && (split == Split::kVocab || dweight != nullptr);
  // The output a unit does not own (dhidden under the vocab split, dweight under the token
  // split) is accumulated into a private copy per thread, and the copies are summed in thread
  // order at the end. With static scheduling that makes the result bit-identical from run to
  // run (resumed training must reproduce the uninterrupted run), at threads x (N x H) or
  // threads x (V x H) floats of extra memory.
  float* other = split == Split::kVocab ? dhidden : dweight;
  const int64_t other_size = split == Split::kVocab ? N * H : V * H;
  std::vector<float> priv(shared ? static_cast<size_t>(nthreads) * other_size : 0, 0.0f);
  BlasSingleThreaded blas_guard(shared);

#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id();
    std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));
    float* mine = shared ? priv.data() + tid * other_size : other;
#pragma omp for schedule(static, 1)
    for (int64_t u = 0; u < units; u++) {
      const int64_t inner = split == Split::kVocab ? nblocks : ntiles;
      for (int64_t j = 0; j < inner; j++) {
        const int64_t tv = split == Split::kVocab ? u : j, blk = split == Split::kVocab ? j : u;
        const int64_t v0 = tv * kVocabTile, vt = std::min(kVocabTile, V - v0);
        const int64_t n0 = blk * kTokBlock, nb = std::min(kTokBlock, N - n0);
        const TW* wt = weight + v0 * H;
        const float* hb = hidden + n0 * H;
        tile_gemm(tile.data(), hb, wt, nb, vt, H, false, true, false, inv_t);
        softmax_grad_tile(tile.data(), n0, nb, v0, vt, targets, lse, entropy, dlogprob, dentropy);
        // dlogit = dL/dz / T:  dweight_tile += g^T @ hidden_block / T;  dhidden_block += g @ W_tile / T
        float* dw = split == Split::kVocab ? dweight : mine;
        float* dh = split == Split::kVocab ? mine : dhidden;
        if (dw) tile_gemm(dw + v0 * H, tile.data(), hb, vt, H, nb, true, false, true, inv_t);
        tile_gemm(dh + n0 * H, tile.data(), wt, nb, H, vt, false, false, true, inv_t);
      }
    }
  }
  if (shared) {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < other_size; k++) {
      float acc = other[k];
      for (int t = 0; t < nthreads; t++) acc += priv[t * other_size + k];
      other[k] = acc;
    }
  }
}

template <class TW>
void backward_impl(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy, const float* hidden,
                   const TW* weight, const int32_t* targets, const float* lse, const float* entropy, int64_t N,
                   int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  std::fill(dhidden, dhidden + N * H, 0.0f);
  if (N == 0) return;
  const float inv_t = 1.0f / temperature;
  // A row whose upstream gradient is zero (an ignored target, or a position the loss masks out:
  // prompt tokens and padding get dlogprob = dentropy = 0) contributes exactly zero to both
  // outputs, so it is left out of the recompute and of both products. In RL batches that is
  // often half the rows, work an unfused composition does in full. (NaN gradients count as
  // nonzero and still propagate.)
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= 0 && (dlogprob[i] != 0.0f || dentropy[i] != 0.0f)) rows.push_back(i);
  const int64_t n = static_cast<int64_t>(rows.size());
  if (n == N) return backward_rows(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, lse, entropy, N, H, V, inv_t);
  if (n == 0) return;
  // Gather the active rows (extra memory: 2 x n x H floats, the size of hidden at most).
  std::vector<float> h(static_cast<size_t>(n * H)), dh(static_cast<size_t>(n * H), 0.0f);
  std::vector<float> dlp(n), dent(n), l(n), ent(n);
  std::vector<int32_t> tg(n);
#pragma omp parallel for schedule(static) if (n * H >= (1 << 16))
  for (int64_t r = 0; r < n; r++) {
    const int64_t i = rows[r];
    std::copy(hidden + i * H, hidden + (i + 1) * H, h.data() + r * H);
    dlp[r] = dlogprob[i], dent[r] = dentropy[i], l[r] = lse[i], ent[r] = entropy[i], tg[r] = targets[i];
  }
  backward_rows(dh.data(), dweight, dlp.data(), dent.data(), h.data(), weight, tg.data(), l.data(), ent.data(), n, H, V,
                inv_t);
#pragma omp parallel for schedule(static) if (n * H >= (1 << 16))
  for (int64_t r = 0; r < n; r++) std::copy(dh.data() + r * H, dh.data() + (r + 1) * H, dhidden + rows[r] * H);
}

// Forward and backward in one pass (lm_head_one_pass.h) for the rows with an upstream gradient;
// the others (zero dlogprob and dentropy: a loss's masked positions) only need the forward.
template <class TW>
void forward_backward_impl(float* logprob, float* entropy, float* dhidden, float* dweight, const float* hidden,
                           const TW* weight, const int32_t* targets, const float* dlogprob, const float* dentropy,
                           int64_t N, int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  std::fill(dhidden, dhidden + N * H, 0.0f);
  std::fill(logprob, logprob + N, 0.0f);
  std::fill(entropy, entropy + N, 0.0f);
  std::vector<int64_t> active, passive;
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= 0) (dlogprob[i] != 0.0f || dentropy[i] != 0.0f ? active : passive).push_back(i);
  const int64_t np = static_cast<int64_t>(passive.size());
  if (np > 0) score_rows(logprob, entropy, hidden, weight, targets, passive.data(), np, H, V, temperature);
  const auto given = [&](const int64_t* rb, int64_t nb, const float*, const float*, float* dlp, float* dent) {
    for (int64_t r = 0; r < nb; r++) dlp[r] = dlogprob[rb[r]], dent[r] = dentropy[rb[r]];
    return true;
  };
  lm_head_one_pass(dhidden, dweight, logprob, entropy, hidden, weight, targets, active.data(),
                   static_cast<int64_t>(active.size()), H, V, 1.0f / temperature, given);
}

// linear_sequence_loss: blocks of whole groups through the one-pass head; a group larger than a
// block alone through forward, seg_grad, backward.
template <class TW>
bool sequence_loss_impl(float* logprob, float* entropy, float* dhidden, float* dweight, double* seg_sums,
                        const float* hidden, const TW* weight, const int32_t* targets, const int32_t* segment, const int32_t* group_of,
                        int64_t S, int64_t N, int64_t H, int64_t V, float temperature, const SegmentGrad& seg_grad) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  for (int64_t s = 0; s < S; s++)
    if (group_of[s] < 0 || group_of[s] >= S) throw std::invalid_argument("group ids must be in [0, S)");
  std::fill(dhidden, dhidden + N * H, 0.0f);
  std::fill(logprob, logprob + N, 0.0f);
  std::fill(entropy, entropy + N, 0.0f);
  std::fill(seg_sums, seg_sums + S, 0.0);
  std::vector<std::vector<int64_t>> by_group(static_cast<size_t>(S));  // each group's rows, in row order
  for (int64_t i = 0; i < N; i++) {
    if (segment[i] < -1 || segment[i] >= S) throw std::invalid_argument("segment ids must be in [-1, S)");
    if (segment[i] >= 0 && targets[i] >= 0) by_group[group_of[segment[i]]].push_back(i);
  }
  const float inv_t = 1.0f / temperature;

  // A block's log-probs (rows rb) -> its segments' sums (double, in row order) -> seg_grad -> dlp.
  std::vector<int32_t> segs;
  std::vector<double> sums, dsums;
  std::vector<int64_t> slot(static_cast<size_t>(S), -1);
  const auto grads = [&](const int64_t* rb, int64_t nb, const float* lp, float* dlp) {
    segs.clear(), sums.clear();
    for (int64_t r = 0; r < nb; r++) {
      const int32_t sg = segment[rb[r]];
      if (slot[sg] < 0) slot[sg] = static_cast<int64_t>(segs.size()), segs.push_back(sg), sums.push_back(0.0);
      sums[slot[sg]] += lp[r];
    }
    for (size_t k = 0; k < segs.size(); k++) seg_sums[segs[k]] = sums[k];
    dsums.assign(segs.size(), 0.0);
    const bool ok = seg_grad(segs.data(), sums.data(), static_cast<int64_t>(segs.size()), dsums.data());
    for (int64_t r = 0; r < nb; r++) dlp[r] = ok ? static_cast<float>(dsums[slot[segment[rb[r]]]]) : 0.0f;
    for (const int32_t sg : segs) slot[sg] = -1;
    return ok;
  };
  std::vector<int64_t> rows;  // the block being filled
  const auto flush = [&]() {
    const bool ok = lm_head_one_pass(dhidden, dweight, logprob, entropy, hidden, weight, targets, rows.data(),
                                     static_cast<int64_t>(rows.size()), H, V, inv_t,
                                     [&](const int64_t* rb, int64_t nb, const float* lp, const float*, float* dlp, float* dent) {
                                       std::fill(dent, dent + nb, 0.0f);
                                       return grads(rb, nb, lp, dlp);
                                     });
    rows.clear();
    return ok;
  };
  const auto two_pass = [&](const std::vector<int64_t>& gr) {  // gathered: 2 x n x H floats
    const int64_t n = static_cast<int64_t>(gr.size());
    const Gathered g = score_rows(logprob, entropy, hidden, weight, targets, gr.data(), n, H, V, temperature);
    std::vector<float> dh(static_cast<size_t>(n * H)), dlp(n), dent(n, 0.0f);
    if (!grads(gr.data(), n, g.lp.data(), dlp.data())) return false;
    backward_impl(dh.data(), dweight, dlp.data(), dent.data(), g.h.data(), weight, g.tg.data(), g.lse.data(), g.ent.data(), n,
                  H, V, temperature);
    for (int64_t r = 0; r < n; r++) std::copy(dh.data() + r * H, dh.data() + (r + 1) * H, dhidden + gr[r] * H);
    return true;
  };
  const int64_t cap = one_pass::block_rows(V);
  for (const auto& gr : by_group) {
    const int64_t n = static_cast<int64_t>(gr.size());
    if (n == 0) continue;
    if (static_cast<int64_t>(rows.size()) + n > cap && !rows.empty() && !flush()) return false;
    if (n > cap) {
      if (!two_pass(gr)) return false;
      continue;
    }
    rows.insert(rows.end(), gr.begin(), gr.end());
  }
  return rows.empty() || flush();
}

}  // namespace

void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const float* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature) {
  forward_impl(logprob, entropy, lse, hidden, weight, targets, N, H, V, temperature);
}
void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const uint16_t* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature) {
  forward_impl(logprob, entropy, lse, hidden, weight, targets, N, H, V, temperature);
}

void linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy,
                             const float* hidden, const float* weight, const int32_t* targets, const float* lse,
                             const float* entropy, int64_t N, int64_t H, int64_t V, float temperature) {
  backward_impl(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, lse, entropy, N, H, V, temperature);
}
void linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy,
                             const float* hidden, const uint16_t* weight, const int32_t* targets, const float* lse,
                             const float* entropy, int64_t N, int64_t H, int64_t V, float temperature) {
  backward_impl(dhidden, dweight, dlogprob, dentropy, hidden, weight, targets, lse, entropy, N, H, V, temperature);
}

void linear_logprob_forward_backward(float* logprob, float* entropy, float* dhidden, float* dweight, const float* hidden,
                                     const float* weight, const int32_t* targets, const float* dlogprob,
                                     const float* dentropy, int64_t N, int64_t H, int64_t V, float temperature) {
  forward_backward_impl(logprob, entropy, dhidden, dweight, hidden, weight, targets, dlogprob, dentropy, N, H, V, temperature);
}
void linear_logprob_forward_backward(float* logprob, float* entropy, float* dhidden, float* dweight, const float* hidden,
                                     const uint16_t* weight, const int32_t* targets, const float* dlogprob,
                                     const float* dentropy, int64_t N, int64_t H, int64_t V, float temperature) {
  forward_backward_impl(logprob, entropy, dhidden, dweight, hidden, weight, targets, dlogprob, dentropy, N, H, V, temperature);
}

bool linear_sequence_loss(float* logprob, float* entropy, float* dhidden, float* dweight, double* sums,
                          const float* hidden, const float* weight, const int32_t* targets, const int32_t* segment,
                          const int32_t* group_of, int64_t S, int64_t N, int64_t H, int64_t V, float temperature,
                          const SegmentGrad& seg_grad) {
  return sequence_loss_impl(logprob, entropy, dhidden, dweight, sums, hidden, weight, targets, segment, group_of, S, N, H, V,
                            temperature, seg_grad);
}
bool linear_sequence_loss(float* logprob, float* entropy, float* dhidden, float* dweight, double* sums,
                          const float* hidden, const uint16_t* weight, const int32_t* targets, const int32_t* segment,
                          const int32_t* group_of, int64_t S, int64_t N, int64_t H, int64_t V, float temperature,
                          const SegmentGrad& seg_grad) {
  return sequence_loss_impl(logprob, entropy, dhidden, dweight, sums, hidden, weight, targets, segment, group_of, S, N, H, V,
                            temperature, seg_grad);
}

}  // namespace anvil::cpu
