// hidden (N, H), weight (V, H), targets (N) -> logprob (N), entropy (N), lse (N)
// dlogprob (N), dentropy (N) -> dhidden (N, H) (overwritten), dweight (V, H) +=
//
// Work unit = one vocab tile (kVocabTile rows of weight) against every token block. Threads take
// vocab tiles (OpenMP), and each runs its own single-threaded sgemm (OpenBLAS pinned to one
// thread for the duration of the call, or the built-in sgemm) on a private logits tile: one
// threading layer, no hand-off between a BLAS pool and OpenMP between the matrix product and
// the softmax work, and parallelism even when N is one token block.
//   forward : each thread keeps an online-softmax state per token for the tiles it saw; the
//             per-thread states are merged at the end (log-sum-exp merge).
//   backward: a vocab tile owns its dweight rows, so dweight needs no reduction; a tile's
//             dhidden contribution for one token block is computed into a private buffer and
//             added under that block's lock.
// Extra memory: threads x (one logits tile of kTokBlock x kVocabTile floats + one kTokBlock x H
// buffer + O(N) state). Logits are never larger than one tile.
// The forward is deterministic for a given thread count; with several threads the backward's
// dhidden sums arrive in lock order, so it can differ run to run in the last bits.
#include "anvil/linear_logprob.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <mutex>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "anvil/gemm.h"
#include "anvil/online_softmax.h"

#ifdef ANVIL_HAVE_CBLAS
#include <cblas.h>
#endif

namespace anvil::cpu {

namespace {

constexpr int64_t kTokBlock = 256;
constexpr int64_t kVocabTile = 2048;  // tile = 2 MiB of logits per thread

void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= V)
      throw std::out_of_range("targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                              " is out of range [0, V = " + std::to_string(V) + ")");
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// While alive, OpenBLAS runs each call on the calling thread only, so that our OpenMP threads
// can each run their own tile sgemm without two thread pools fighting over the cores. The
// previous setting is restored on exit (also on exceptions).
class BlasSingleThreaded {
 public:
  explicit BlasSingleThreaded(bool engage) {
#ifdef ANVIL_HAVE_CBLAS
    if (engage && openblas_get_num_threads() > 1) {
      saved_ = openblas_get_num_threads();
      openblas_set_num_threads(1);
    }
#else
    (void)engage;
#endif
  }
  ~BlasSingleThreaded() {
#ifdef ANVIL_HAVE_CBLAS
    if (saved_ > 0) openblas_set_num_threads(saved_);
#endif
  }
  BlasSingleThreaded(const BlasSingleThreaded&) = delete;
  BlasSingleThreaded& operator=(const BlasSingleThreaded&) = delete;

 private:
  int saved_ = 0;
};

// The sgemm of one contiguous tile: OpenBLAS when built with it (single-threaded inside our
// parallel regions, see BlasSingleThreaded), else the built-in sgemm, whose own OpenMP region
// is nested in ours and so runs on the calling thread.
void tile_gemm(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
               bool trans_b, bool accumulate, float alpha) {
  matmul(out, a, b, M, N, K, trans_a, trans_b, accumulate, alpha);
}

// g (nb, vt) holds z = logits / T on entry and dL/dz on exit, for rows n0.. and vocab v0..
void softmax_grad_tile(float* g, int64_t n0, int64_t nb, int64_t v0, int64_t vt, const int32_t* targets,
                       const float* lse, const float* entropy, const float* dlogprob, const float* dentropy) {
  for (int64_t r = 0; r < nb; r++) {
    const int64_t i = n0 + r;
    float* gr = g + r * vt;
    const int64_t tgt = targets[i];
    if (tgt < 0) {
      std::fill(gr, gr + vt, 0.0f);
      continue;
    }
    // dL/dz_j = dlp (onehot_j - p_j) - dH p_j (z_j - mu) = -p_j (dlp + dH (z_j - mu)) + dlp onehot_j
    const float l = lse[i], mu = lse[i] - entropy[i], dlp = dlogprob[i], dh = dentropy[i];
    int64_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vl = _mm256_set1_ps(l), vmu = _mm256_set1_ps(mu), vdlp = _mm256_set1_ps(dlp),
                 vdh = _mm256_set1_ps(dh), vzero = _mm256_setzero_ps(), vfloor = _mm256_set1_ps(kExpFloor);
    for (; j + 8 <= vt; j += 8) {
      __m256 z = _mm256_loadu_ps(gr + j);
      __m256 p = exp256(_mm256_max_ps(_mm256_sub_ps(z, vl), vfloor));
      __m256 w = _mm256_fmadd_ps(vdh, _mm256_sub_ps(z, vmu), vdlp);
      _mm256_storeu_ps(gr + j, _mm256_sub_ps(vzero, _mm256_mul_ps(p, w)));
    }
#endif
    for (; j < vt; j++) {
      const float z = gr[j];
      const float p = std::exp(std::max(z - l, kExpFloor));
      gr[j] = -p * (dlp + dh * (z - mu));
    }
    if (tgt >= v0 && tgt < v0 + vt) gr[tgt - v0] += dlp;
  }
}

}  // namespace

void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const float* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  if (N == 0) return;
  const float inv_t = 1.0f / temperature;
  const int64_t ntiles = (V + kVocabTile - 1) / kVocabTile;
  const int nthreads = static_cast<int>(std::min<int64_t>(max_threads(), ntiles));
  std::vector<OnlineSoftmax> state(static_cast<size_t>(nthreads) * N);  // per thread, per token
  std::vector<float> target_z(N, 0.0f);  // written by the one tile holding the target
  BlasSingleThreaded blas_guard(nthreads > 1);

#pragma omp parallel num_threads(nthreads)
  {
    OnlineSoftmax* st = state.data() + static_cast<size_t>(thread_id()) * N;
    std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));
#pragma omp for schedule(static, 1)  // static: the per-thread states, hence lse, are run-to-run identical
    for (int64_t tv = 0; tv < ntiles; tv++) {
      const int64_t v0 = tv * kVocabTile, vt = std::min(kVocabTile, V - v0);
      for (int64_t n0 = 0; n0 < N; n0 += kTokBlock) {
        const int64_t nb = std::min(kTokBlock, N - n0);
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
#pragma omp parallel for schedule(static) if (N >= 4096)
  for (int64_t i = 0; i < N; i++) {
    OnlineSoftmax s = state[i];
    for (int k = 1; k < nthreads; k++) s.merge(state[static_cast<size_t>(k) * N + i]);
    lse[i] = s.lse();
    const bool ignored = targets[i] < 0;
    logprob[i] = ignored ? 0.0f : target_z[i] - lse[i];
    entropy[i] = ignored ? 0.0f : s.entropy();
  }
}

void linear_logprob_backward(float* dhidden, float* dweight, const float* dlogprob, const float* dentropy,
                             const float* hidden, const float* weight, const int32_t* targets, const float* lse,
                             const float* entropy, int64_t N, int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  std::fill(dhidden, dhidden + N * H, 0.0f);
  if (N == 0) return;
  const float inv_t = 1.0f / temperature;
  const int64_t ntiles = (V + kVocabTile - 1) / kVocabTile;
  const int64_t nblocks = (N + kTokBlock - 1) / kTokBlock;
  const int nthreads = static_cast<int>(std::min<int64_t>(max_threads(), ntiles));
  // One lock per token block of dhidden: a tile's contribution is computed privately and added
  // under the block's lock, so extra memory stays at one (kTokBlock, H) buffer per thread.
  std::vector<std::mutex> block_locks(nthreads > 1 ? nblocks : 0);
  BlasSingleThreaded blas_guard(nthreads > 1);

#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id();
    std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));
    std::vector<float> contrib(nthreads > 1 ? std::min(N, kTokBlock) * H : 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t tv = 0; tv < ntiles; tv++) {
      const int64_t v0 = tv * kVocabTile, vt = std::min(kVocabTile, V - v0);
      const float* wt = weight + v0 * H;
      for (int64_t step = 0; step < nblocks; step++) {
        const int64_t blk = (step + tid) % nblocks;  // threads start on different blocks: fewer lock waits
        const int64_t n0 = blk * kTokBlock, nb = std::min(kTokBlock, N - n0);
        const float* hb = hidden + n0 * H;
        tile_gemm(tile.data(), hb, wt, nb, vt, H, false, true, false, inv_t);
        softmax_grad_tile(tile.data(), n0, nb, v0, vt, targets, lse, entropy, dlogprob, dentropy);
        // dlogit = dL/dz / T:  dweight_tile += g^T @ hidden_block / T  (this thread owns the tile)
        tile_gemm(dweight + v0 * H, tile.data(), hb, vt, H, nb, true, false, true, inv_t);
        // dhidden[n0:n0+nb] += g @ W_tile / T
        if (nthreads == 1) {
          tile_gemm(dhidden + n0 * H, tile.data(), wt, nb, H, vt, false, false, true, inv_t);
        } else {
          tile_gemm(contrib.data(), tile.data(), wt, nb, H, vt, false, false, false, inv_t);
          std::lock_guard<std::mutex> guard(block_locks[blk]);
          float* dst = dhidden + n0 * H;
          for (int64_t k = 0; k < nb * H; k++) dst[k] += contrib[k];
        }
      }
    }
  }
}

}  // namespace anvil::cpu
