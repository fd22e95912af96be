// The float vector the trainer's kernels are written in, at the widest width
// the compiler targets. The trainer is built with -march=native (.bazelrc), so
// a machine with AVX-512 gets 16 lanes, one with AVX2 and FMA 8, and any other
// x86-64 4 (SSE2): speed follows the instruction set the host has, not a
// library's table of CPU models.
//
// Partial loads and stores touch only the first `n` lanes' memory: masked on
// AVX-512 and AVX2, element by element on SSE2.
//
// Each width lives in an inline namespace of its own, so files built for
// different instruction sets (trainer/gemm_speed_test forces one) never share
// a symbol.
#ifndef QFORGE_TRAINER_NN_SIMD_H_
#define QFORGE_TRAINER_NN_SIMD_H_

#include <immintrin.h>

namespace qforge {
namespace simd {

#if defined(__AVX512F__)
inline namespace avx512 {

inline constexpr int kLanes = 16;
inline constexpr int kRegisters = 32;
inline constexpr const char* kName = "avx512";
using Vec = __m512;
inline Vec Zero() { return _mm512_setzero_ps(); }
inline Vec Broadcast(float x) { return _mm512_set1_ps(x); }
inline Vec Load(const float* p) { return _mm512_loadu_ps(p); }
inline void Store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline __mmask16 Mask(int n) { return static_cast<__mmask16>((1u << n) - 1); }
inline Vec LoadPartial(const float* p, int n) { return _mm512_maskz_loadu_ps(Mask(n), p); }
inline void StorePartial(float* p, Vec v, int n) { _mm512_mask_storeu_ps(p, Mask(n), v); }
inline Vec Add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec Mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec Fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
// The zero-masked forms throughout: GCC 12 warns falsely about the
// _mm512_undefined_pd() inside the unmasked ones (and the 512-to-256 cast).
template <int kWhich>
inline __m256 Half(Vec v) {
  return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, _mm512_castps_pd(v), kWhich));
}
inline void AddToDoubles(double* p, Vec v) {
  const __m512d low = _mm512_maskz_cvtps_pd(0xFF, Half<0>(v));
  const __m512d high = _mm512_maskz_cvtps_pd(0xFF, Half<1>(v));
  _mm512_storeu_pd(p, _mm512_add_pd(_mm512_loadu_pd(p), low));
  _mm512_storeu_pd(p + 8, _mm512_add_pd(_mm512_loadu_pd(p + 8), high));
}

#elif defined(__AVX2__) && defined(__FMA__)
inline namespace avx2 {

inline constexpr int kLanes = 8;
inline constexpr int kRegisters = 16;
inline constexpr const char* kName = "avx2";
using Vec = __m256;
inline Vec Zero() { return _mm256_setzero_ps(); }
inline Vec Broadcast(float x) { return _mm256_set1_ps(x); }
inline Vec Load(const float* p) { return _mm256_loadu_ps(p); }
inline void Store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline __m256i Mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline Vec LoadPartial(const float* p, int n) { return _mm256_maskload_ps(p, Mask(n)); }
inline void StorePartial(float* p, Vec v, int n) { _mm256_maskstore_ps(p, Mask(n), v); }
inline Vec Add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec Mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec Fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline void AddToDoubles(double* p, Vec v) {
  const __m256d low = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
  const __m256d high = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
  _mm256_storeu_pd(p, _mm256_add_pd(_mm256_loadu_pd(p), low));
  _mm256_storeu_pd(p + 4, _mm256_add_pd(_mm256_loadu_pd(p + 4), high));
}

#else
inline namespace sse2 {

inline constexpr int kLanes = 4;
inline constexpr int kRegisters = 16;
inline constexpr const char* kName = "sse2";
using Vec = __m128;
inline Vec Zero() { return _mm_setzero_ps(); }
inline Vec Broadcast(float x) { return _mm_set1_ps(x); }
inline Vec Load(const float* p) { return _mm_loadu_ps(p); }
inline void Store(float* p, Vec v) { _mm_storeu_ps(p, v); }
inline Vec LoadPartial(const float* p, int n) {
  alignas(16) float lanes[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int i = 0; i < n; ++i) lanes[i] = p[i];
  return _mm_load_ps(lanes);
}
inline void StorePartial(float* p, Vec v, int n) {
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, v);
  for (int i = 0; i < n; ++i) p[i] = lanes[i];
}
inline Vec Add(Vec a, Vec b) { return _mm_add_ps(a, b); }
inline Vec Mul(Vec a, Vec b) { return _mm_mul_ps(a, b); }
inline Vec Fma(Vec a, Vec b, Vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
inline void AddToDoubles(double* p, Vec v) {
  _mm_storeu_pd(p, _mm_add_pd(_mm_loadu_pd(p), _mm_cvtps_pd(v)));
  _mm_storeu_pd(p + 2, _mm_add_pd(_mm_loadu_pd(p + 2), _mm_cvtps_pd(_mm_movehl_ps(v, v))));
}

#endif

// AddToDoubles(p, v): p[i] += v[i] for every lane i, in double.

// The first n lanes (n <= kLanes), full-width when n == kLanes.
inline Vec LoadLanes(const float* p, int n) { return n == kLanes ? Load(p) : LoadPartial(p, n); }
inline void StoreLanes(float* p, Vec v, int n) {
  if (n == kLanes) {
    Store(p, v);
  } else {
    StorePartial(p, v, n);
  }
}

}  // namespace (the instruction set's)
}  // namespace simd
}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_SIMD_H_
