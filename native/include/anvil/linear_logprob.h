// Fused LM head + log-prob + entropy: softmax(hidden @ weight^T / T) is never materialised.
// N = tokens, H = hidden size, V = vocabulary, T = temperature.
//
// Work is tiled (vocab tile x token block); each tile of logits is produced by one sgemm,
// consumed (online log-sum-exp forward; softmax gradient backward) and discarded, so extra
// memory is one tile (kTokBlock x kVocabTile floats) plus O(N) state.
#pragma once
#include <cstdint>
#include <functional>

namespace anvil::cpu {

// hidden (N, H), weight (V, H), targets (N) -> logprob (N), entropy (N), lse (N)
// logprob = z[target] - lse, entropy = lse - sum softmax(z) * z, z = hidden @ weight^T / T.
// targets < 0: logprob 0, entropy 0 (lse is still computed). targets >= V throws.
void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const float* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature);

// dlogprob (N), dentropy (N), hidden, weight, targets, lse, entropy (from the forward)
// -> dhidden (N, H) (overwritten), dweight (V, H) +=
// With p = softmax(z), mu = sum p z = lse - entropy, per row:
//   dL/dz_j = dlogprob * (onehot_j - p_j) - dentropy * p_j * (z_j - mu),  dL/dlogit = dL/dz / T
// targets < 0: no gradient from that row (dhidden row = 0). Rows with dlogprob = dentropy = 0
// (positions a loss masks out) are skipped: their logits are not recomputed.
// dweight may be null: no weight gradient is computed (a frozen head).
void linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy,
                             const float* hidden, const float* weight, const int32_t* targets, const float* lse,
                             const float* entropy, int64_t N, int64_t H, int64_t V, float temperature);

// The same two with weight stored in bf16 (uint16_t bits, a frozen head): widened to f32 per tile.
void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const uint16_t* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature);
void linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy,
                             const float* hidden, const uint16_t* weight, const int32_t* targets, const float* lse,
                             const float* entropy, int64_t N, int64_t H, int64_t V, float temperature);

// Forward and backward in one pass, when the upstream gradient does not depend on the outputs
// (a loss linear in the log-probs and entropies: cross-entropy, a fixed-advantage policy
// gradient): hidden, weight, targets, dlogprob, dentropy -> logprob, entropy, dhidden
// (overwritten), dweight += (null: none). The results of forward then backward, up to float
// rounding, with each row's logits made once (3 matrix products, not 4); rows with
// dlogprob = dentropy = 0 get the forward only. Extra memory is bounded as the forward's
// (lm_head_one_pass.h), whatever N is.
void linear_logprob_forward_backward(float* logprob, float* entropy, float* dhidden, float* dweight, const float* hidden,
                                     const float* weight, const int32_t* targets, const float* dlogprob,
                                     const float* dentropy, int64_t N, int64_t H, int64_t V, float temperature);
void linear_logprob_forward_backward(float* logprob, float* entropy, float* dhidden, float* dweight, const float* hidden,
                                     const uint16_t* weight, const int32_t* targets, const float* dlogprob,
                                     const float* dentropy, int64_t N, int64_t H, int64_t V, float temperature);

// A loss of summed log-probs (DPO and the other preference losses), whose upstream gradient is
// known only once the sums are: row i's log-prob adds to segment[i] (-1: outside the loss; its
// logprob and entropy are written 0), segment s belongs to group group_of[s] (the segments one
// loss term couples: a pair's chosen and rejected). The rows are taken a block of whole groups
// at a time; once a block's log-probs are made, seg_grad(segs, sums, n, dsums) gives
// d loss / d sum for its n segments (each segment in exactly one call), and every row of segment
// s gets dlogprob = dsums of s, dentropy 0. One pass per block (3 matrix products, as
// linear_logprob_forward_backward); a group with more rows than a block holds runs forward,
// seg_grad, backward (4). seg_grad is called on the calling thread and returns false to stop:
// the op then returns false with the gradients of the blocks already done applied. Writes
// logprob and entropy (N), dhidden (N, H) (overwritten), dweight (V, H) += (null: none), and
// sums (S): each segment's summed log-prob (0 for a segment with no row in the loss).
using SegmentGrad = std::function<bool(const int32_t* segs, const double* sums, int64_t n, double* dsums)>;
bool linear_sequence_loss(float* logprob, float* entropy, float* dhidden, float* dweight, double* sums,
                          const float* hidden, const float* weight, const int32_t* targets, const int32_t* segment, const int32_t* group_of,
                          int64_t S, int64_t N, int64_t H, int64_t V, float temperature, const SegmentGrad& seg_grad);
bool linear_sequence_loss(float* logprob, float* entropy, float* dhidden, float* dweight, double* sums,
                          const float* hidden, const uint16_t* weight, const int32_t* targets, const int32_t* segment,
                          const int32_t* group_of, int64_t S, int64_t N, int64_t H, int64_t V, float temperature,
                          const SegmentGrad& seg_grad);

}  // namespace anvil::cpu
