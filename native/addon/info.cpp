// Build and runtime facts for `anvil doctor`, and the thread-count control.
#include <napi.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "anvil/simd_isa.h"
#include "anvil/matmul.h"
#include "args.h"

#ifndef ANVIL_BLAS_NAME
#define ANVIL_BLAS_NAME "builtin"
#endif


ANVIL_EXPORT(buildInfo) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("blas", ANVIL_BLAS_NAME);
#ifdef _OPENMP
  o.Set("openmp", true);
  o.Set("threads", omp_get_max_threads());
#else
  o.Set("openmp", false);
  o.Set("threads", 1);
#endif
#if defined(__AVX2__) && defined(__FMA__)
  o.Set("avx2", true);
#else
  o.Set("avx2", false);
#endif
  // sgemm candidates usable on this CPU with this build (see matmul.cpp)
  auto names = anvil::cpu::gemm_candidates();
  auto arr = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) arr.Set(static_cast<uint32_t>(i), names[i]);
  o.Set("gemmCandidates", arr);
  // vector ISAs of the softmax kernels (softmax, log-prob, sampling) and the one in use
  auto isas = anvil::cpu::simd_isas();
  auto isa_arr = Napi::Array::New(env, isas.size());
  for (size_t i = 0; i < isas.size(); i++) isa_arr.Set(static_cast<uint32_t>(i), isas[i]);
  o.Set("simdIsas", isa_arr);
  o.Set("simdIsa", anvil::cpu::simd_isa_selected());
#ifdef ANVIL_CUDA_BUILT
  o.Set("cudaBuilt", true);
#else
  o.Set("cudaBuilt", false);
#endif
  return o;
}

ANVIL_EXPORT(setThreads) {
  int n = static_cast<int>(anvil::integer(info, 0, "threads", 1));
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  // OpenBLAS itself stays at 1 thread (see matmul.cpp): the OpenMP team is the only one.
  return info.Env().Undefined();
}

// Selects the vector ISA of the softmax kernels ("avx2", "avx512": buildInfo().simdIsas).
ANVIL_EXPORT(setSimdIsa) {
  if (!info[0].IsString()) throw anvil::ArgError("the vector ISA name must be a string", false);
  try {
    anvil::cpu::set_simd_isa(info[0].As<Napi::String>().Utf8Value());
  } catch (const std::invalid_argument& e) {
    throw anvil::ArgError(e.what(), true);
  }
  return info.Env().Undefined();
}
