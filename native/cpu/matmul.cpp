// sgemm dispatch: one of several implementations (sgemm_candidates.h), chosen at run time.
// The default is the widest built-in kernel this CPU runs; the TypeScript side times every
// candidate on the model's shapes once per machine and selects the fastest (src/backend/gemm.ts),
// because which one wins depends on the CPU and the BLAS build, not on what is present.
//
// Common to every candidate, handled here: beta other than 0 or 1 (scaled up front), K = 0 (an
// empty sum), and products of at most 8 rows (decode steps), which stream B once instead of
// packing it (sgemm_small_m).
//
// B may also be stored in bf16 (frozen weights): the same dispatch with each candidate's bf16
// variant, widening B's panels to f32 as they are packed. OpenBLAS has no bf16 sgemm, so when
// it is the selected candidate a bf16 product runs on the widest built-in kernel.
#include "anvil/matmul.h"

#include <atomic>
#include <string>
#include <vector>
#include <cstring>
#include <stdexcept>

#include "sgemm_candidates.h"

namespace anvil::cpu {

namespace {

struct Candidate {
  const char* name;
  gemm::SgemmFn fn;           // null when not built
  gemm::SgemmBf16Fn fn_bf16;  // B in bf16; null when the candidate has none
  bool (*usable)();           // CPU support
};

bool always() { return true; }

const Candidate kCandidates[] = {
    {"openblas", gemm::sgemm_openblas, nullptr, always},
    {"avx2", gemm::sgemm_avx2, gemm::sgemm_avx2_bf16, always},
    {"avx512", gemm::sgemm_avx512, gemm::sgemm_avx512_bf16, gemm::avx512_usable},
};

bool available(const Candidate& c) { return c.fn != nullptr && c.usable(); }

const Candidate* find(const std::string& name) {
  for (const auto& c : kCandidates)
    if (name == c.name) {
      if (!available(c))
        throw std::invalid_argument("sgemm candidate '" + name + "' is not available here (available: " +
                                    [] {
                                      std::string s;
                                      for (const auto& n : gemm_candidates()) s += (s.empty() ? "" : ", ") + n;
                                      return s;
                                    }() +
                                    ")");
      return &c;
    }
  throw std::invalid_argument("unknown sgemm candidate '" + name + "' (known: openblas, avx2, avx512)");
}

const Candidate* widest_builtin() { return available(kCandidates[2]) ? &kCandidates[2] : &kCandidates[1]; }

std::atomic<const Candidate*> selected{nullptr};

const Candidate* current() {
  const Candidate* c = selected.load(std::memory_order_relaxed);
  return c ? c : widest_builtin();
}

// The candidate's kernel for B of type TB.
gemm::SgemmFn kernel_for(const Candidate& c, const float*) { return c.fn; }
gemm::SgemmBf16Fn kernel_for(const Candidate& c, const bf16_t*) {
  return c.fn_bf16 ? c.fn_bf16 : widest_builtin()->fn_bf16;
}

template <class TB>
void run(const Candidate& c, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
         int64_t lda, const TB* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  // Kernels know beta = 0 (C never read, so NaNs in it vanish, as in BLAS) and beta = 1;
  // any other beta scales C once up front.
  if (beta != 0.0f && beta != 1.0f) {
#pragma omp parallel for schedule(static) if (M * N >= (1 << 16))
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] *= beta;
    beta = 1.0f;
  }
  const bool accumulate = beta == 1.0f;
  if (K == 0) {  // empty sum: alpha * 0
    if (!accumulate)
      for (int64_t i = 0; i < M; i++) std::memset(C + i * ldc, 0, static_cast<size_t>(N) * sizeof(float));
    return;
  }
  if (M <= gemm::kSmallM) {
    const float* rows = A;
    thread_local std::vector<float> gathered;
    if (trans_a || lda != K) {  // gather op(A)'s rows contiguously (at most 8 * K floats)
      gathered.resize(static_cast<size_t>(M * K));
      for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) gathered[i * K + k] = trans_a ? A[k * lda + i] : A[i * lda + k];
      rows = gathered.data();
    }
    gemm::sgemm_small_m(trans_b, M, N, K, alpha, rows, B, ldb, accumulate, C, ldc);
    return;
  }
  kernel_for(c, B)(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, accumulate, C, ldc);
}

}  // namespace

std::vector<std::string> gemm_candidates() {
  std::vector<std::string> out;
  for (const auto& c : kCandidates)
    if (available(c)) out.push_back(c.name);
  return out;
}

void set_gemm(const std::string& name) { selected.store(find(name), std::memory_order_relaxed); }

const char* gemm_selected() { return current()->name; }

void sgemm_with(const std::string& name, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  run(*find(name), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_with(const std::string& name, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                const float* A, int64_t lda, const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const Candidate* c = find(name);
  if (!c->fn_bf16) throw std::invalid_argument("sgemm candidate '" + name + "' has no bf16 variant");
  run(*c, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  run(*current(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const bf16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  run(*current(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_builtin_strided(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  run(kCandidates[1], trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_builtin(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a,
                   bool trans_b, bool accumulate, float alpha) {
  sgemm_builtin_strided(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N,
                        accumulate ? 1.0f : 0.0f, out, N);
}

void matmul(float* out, const float* a, const float* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha) {
  sgemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, accumulate ? 1.0f : 0.0f, out, N);
}

void matmul(float* out, const float* a, const bf16_t* b, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
            bool accumulate, float alpha) {
  sgemm(trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, accumulate ? 1.0f : 0.0f, out, N);
}

}  // namespace anvil::cpu
