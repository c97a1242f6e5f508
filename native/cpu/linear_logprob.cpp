// hidden (N, H), weight (V, H), targets (N) -> logprob (N), entropy (N), lse (N)
// dlogprob (N), dentropy (N) -> dhidden (N, H) (overwritten), dweight (V, H) +=
//
// Loop order: vocab tiles outside, token blocks inside. The forward keeps an online softmax
// state per token (O(N)); the backward then finishes every dweight tile before moving on, and
// re-reads hidden / dhidden once per vocab tile (N*H floats, small next to V*H).
// The matrix products run through sgemm (OpenBLAS threads them); the per-row softmax work in
// between is parallel over rows with OpenMP. Logits are never larger than one tile.
#include "anvil/linear_logprob.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "anvil/online_softmax.h"

#ifdef ANVIL_HAVE_CBLAS
#include <cblas.h>
#endif

namespace anvil::cpu {

namespace {

constexpr int64_t kTokBlock = 256;
constexpr int64_t kVocabTile = 2048;  // tile = 2 MiB of logits

void check_targets(const int32_t* targets, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; i++)
    if (targets[i] >= V)
      throw std::out_of_range("targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) +
                              " is out of range [0, V = " + std::to_string(V) + ")");
}

// Row-major C (M, N) = alpha * op(A) op(B) + beta * C, A/B/C with leading dimensions.
// Without BLAS: a plain blocked loop, parallel over rows of C.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
#ifdef ANVIL_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#else
  constexpr int64_t kb = 256;
#pragma omp parallel
  {
    std::vector<float> acc(N);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; i++) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t k0 = 0; k0 < K; k0 += kb) {
        const int64_t k1 = std::min(K, k0 + kb);
        if (trans_b) {  // B stored (N, K): dot products
          for (int64_t j = 0; j < N; j++) {
            const float* b = B + j * ldb;
            float s = 0.0f;
            for (int64_t k = k0; k < k1; k++) s += (trans_a ? A[k * lda + i] : A[i * lda + k]) * b[k];
            acc[j] += s;
          }
        } else {  // B stored (K, N): axpy rows
          for (int64_t k = k0; k < k1; k++) {
            const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
            const float* b = B + k * ldb;
            for (int64_t j = 0; j < N; j++) acc[j] += a * b[j];
          }
        }
      }
      float* c = C + i * ldc;
      for (int64_t j = 0; j < N; j++) c[j] = alpha * acc[j] + (beta == 0.0f ? 0.0f : beta * c[j]);
    }
  }
#endif
}

}  // namespace

void linear_logprob_forward(float* logprob, float* entropy, float* lse, const float* hidden, const float* weight,
                            const int32_t* targets, int64_t N, int64_t H, int64_t V, float temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("temperature must be > 0");
  check_targets(targets, N, V);
  if (N == 0) return;
  const float inv_t = 1.0f / temperature;
  std::vector<OnlineSoftmax> state(N);
  std::vector<float> target_z(N, 0.0f);
  std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));

  for (int64_t v0 = 0; v0 < V; v0 += kVocabTile) {
    const int64_t vt = std::min(kVocabTile, V - v0);
    for (int64_t n0 = 0; n0 < N; n0 += kTokBlock) {
      const int64_t nb = std::min(kTokBlock, N - n0);
      // tile (nb, vt) = hidden[n0:n0+nb] @ weight[v0:v0+vt]^T / T
      gemm(false, true, nb, vt, H, inv_t, hidden + n0 * H, H, weight + v0 * H, H, 0.0f, tile.data(), vt);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < nb; r++) {
        const float* z = tile.data() + r * vt;
        online_update(state[n0 + r], z, vt, 1.0f);
        const int64_t tgt = targets[n0 + r];
        if (tgt >= v0 && tgt < v0 + vt) target_z[n0 + r] = z[tgt - v0];
      }
    }
  }
  for (int64_t i = 0; i < N; i++) {
    lse[i] = state[i].lse();
    const bool ignored = targets[i] < 0;
    logprob[i] = ignored ? 0.0f : target_z[i] - lse[i];
    entropy[i] = ignored ? 0.0f : state[i].entropy();
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
  std::vector<float> tile(std::min(N, kTokBlock) * std::min(V, kVocabTile));

  for (int64_t v0 = 0; v0 < V; v0 += kVocabTile) {
    const int64_t vt = std::min(kVocabTile, V - v0);
    for (int64_t n0 = 0; n0 < N; n0 += kTokBlock) {
      const int64_t nb = std::min(kTokBlock, N - n0);
      const float* hb = hidden + n0 * H;
      gemm(false, true, nb, vt, H, inv_t, hb, H, weight + v0 * H, H, 0.0f, tile.data(), vt);
      // tile <- dL/dz (the 1/T of dz/dlogit is folded into the two products below)
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < nb; r++) {
        const int64_t i = n0 + r;
        float* g = tile.data() + r * vt;
        const int64_t tgt = targets[i];
        if (tgt < 0) {
          std::fill(g, g + vt, 0.0f);
          continue;
        }
        const float l = lse[i], mu = lse[i] - entropy[i], dlp = dlogprob[i], dh = dentropy[i];
        int64_t j = 0;
#if defined(__AVX2__) && defined(__FMA__)
        const __m256 vl = _mm256_set1_ps(l), vmu = _mm256_set1_ps(mu), vdlp = _mm256_set1_ps(dlp),
                     vdh = _mm256_set1_ps(dh), vzero = _mm256_setzero_ps();
        for (; j + 8 <= vt; j += 8) {
          __m256 z = _mm256_loadu_ps(g + j);
          __m256 p = exp256(_mm256_max_ps(_mm256_sub_ps(z, vl), _mm256_set1_ps(kExpFloor)));
          // -p * (dlp + dh * (z - mu))
          __m256 w = _mm256_fmadd_ps(vdh, _mm256_sub_ps(z, vmu), vdlp);
          _mm256_storeu_ps(g + j, _mm256_sub_ps(vzero, _mm256_mul_ps(p, w)));
        }
#endif
        for (; j < vt; j++) {
          const float z = g[j];
          const float p = std::exp(std::max(z - l, kExpFloor));
          g[j] = -p * (dlp + dh * (z - mu));
        }
        if (tgt >= v0 && tgt < v0 + vt) g[tgt - v0] += dlp;
      }
      // dhidden[n0:n0+nb] += g @ weight_tile / T;  dweight_tile += g^T @ hidden_block / T
      gemm(false, false, nb, H, vt, inv_t, tile.data(), vt, weight + v0 * H, H, 1.0f, dhidden + n0 * H, H);
      gemm(true, false, vt, H, nb, inv_t, tile.data(), vt, hb, H, 1.0f, dweight + v0 * H, H);
    }
  }
}

}  // namespace anvil::cpu
