// bf16 (bfloat16) storage for frozen weights: the upper 16 bits of an f32 (8-bit exponent,
// 7-bit mantissa). Converting to f32 is exact (a shift), so kernels read bf16 weights, widen
// them to f32 where they pack or load a tile, and do all arithmetic in f32. Private to native/cpu.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace anvil::cpu {

using bf16_t = uint16_t;

inline float bf16_to_f32(bf16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest, ties to even (what torch's .to(torch.bfloat16) does); NaN stays NaN.
inline bf16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<bf16_t>(bits >> 16);
}

// The same element read as f32, whichever storage: lets one template serve f32 and bf16 weights.
inline float as_f32(float x) { return x; }
inline float as_f32(bf16_t x) { return bf16_to_f32(x); }

#if defined(__AVX2__)
// 8 consecutive elements as one ymm of f32.
inline __m256 load8_f32(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8_f32(const bf16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#endif

// dst[i] = src[i] as f32, for n elements.
inline void widen_row(float* dst, const float* src, int64_t n) { std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); }
inline void widen_row(float* dst, const bf16_t* src, int64_t n) {
  int64_t i = 0;
#if defined(__AVX2__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8_f32(src + i));
#endif
  for (; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

}  // namespace anvil::cpu
