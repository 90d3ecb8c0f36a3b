// Vector math shared by the per-ISA sources (activations, softmax): included after vec.h, so
// each copy lives in that build's ISA namespace. Every function is branch-free and safe for
// every input: both sides of a select are computed. The AVX-512 copy uses a few instructions
// GCC's vector extensions cannot express (rcp14, scalef, fmsub); the others keep the portable code.
#pragma once
#include "cpu/simd/vec.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {

typedef int ivec __attribute__((vector_size(kWidth * sizeof(int))));
typedef unsigned uvec __attribute__((vector_size(kWidth * sizeof(unsigned))));

// c[0] u^(N-1) + c[1] u^(N-2) + ... + c[N-1], in Horner form: one fused step per coefficient.
template <class V, int N>
inline V horner(V u, const float (&c)[N]) {
  V p = V{} + c[0];
  for (int i = 1; i < N; ++i) p = p * u + c[i];
  return p;
}

// 1.5 * 2^23: adding it to a float of magnitude < 2^22 rounds that to an integer, which the low
// bits of the sum then hold.
constexpr float kRoundingMagic = 12582912.0f;

inline vec abs(vec x) { return (vec)((ivec)x & 0x7fffffff); }
inline vec negative_abs(vec x) { return (vec)((ivec)x | int(0x80000000)); }  // one OR, not AND + XOR

// min(x, hi) and max(x, lo), NaN passed through: one instruction each (x86 min/max return the
// second operand when either is NaN) where a compare-and-select costs two.
inline vec at_most(vec x, float hi) {
#if defined(__AVX512F__)
  return (vec)_mm512_min_ps(_mm512_set1_ps(hi), (__m512)x);
#elif defined(__AVX__)
  return (vec)_mm256_min_ps(_mm256_set1_ps(hi), (__m256)x);
#elif defined(__SSE__)
  return (vec)_mm_min_ps(_mm_set1_ps(hi), (__m128)x);
#else
  return x > hi ? splat(hi) : x;
#endif
}

inline vec at_least(vec x, float lo) {
#if defined(__AVX512F__)
  return (vec)_mm512_max_ps(_mm512_set1_ps(lo), (__m512)x);
#elif defined(__AVX__)
  return (vec)_mm256_max_ps(_mm256_set1_ps(lo), (__m256)x);
#elif defined(__SSE__)
  return (vec)_mm_max_ps(_mm_set1_ps(lo), (__m128)x);
#else
  return x < lo ? splat(lo) : x;
#endif
}

// x clamped to [lo, hi], NaN passed through.
inline vec clamp(vec x, float lo, float hi) { return at_most(at_least(x, lo), hi); }

// a / b for finite b in [1, 16]. AVX-512: a 14-bit reciprocal estimate r and one Newton step on
// the quotient, q + (a - q b) r, which leaves a relative error of ~2^-28 before the last rounding
// (~0.56 ULP in all): four cheap instructions where a division blocks its unit for ~10 cycles.
// AVX2's estimate has 12 bits and would need a second step, so the others divide.
inline vec divide(vec a, vec b) {
#if defined(__AVX512F__)
  const vec r = (vec)_mm512_rcp14_ps((__m512)b);
  const vec q = a * r;
  return q + (a - q * b) * r;
#else
  return a / b;
#endif
}

// 1 / b for finite b in [1, 16]: AVX-512 as divide's Newton step, r + (1 - r b) r, in three
// instructions; the others divide.
inline vec reciprocal(vec b) {
#if defined(__AVX512F__)
  const vec r = (vec)_mm512_rcp14_ps((__m512)b);
  return r + (1.0f - r * b) * r;
#else
  return 1.0f / b;
#endif
}

// v 2^n for integral n in [-150, 129], rounded once also when the result is subnormal.
inline vec times_power_of_2(vec v, vec n) {
#if defined(__AVX512F__)
  return (vec)_mm512_scalef_ps((__m512)v, (__m512)n);
#else
  // 2^n as two factors 2^(n/2) 2^(n - n/2), each a normal float: v 2^(n/2) stays normal, so
  // only the second product rounds into the subnormals. n's integer comes from the bits of
  // n + kRoundingMagic, not a conversion, which would be undefined for a NaN n.
  const ivec n_int = (ivec)(n + kRoundingMagic) - (ivec)splat(kRoundingMagic);
  const ivec half = n_int >> 1;
  const vec scale_a = (vec)((uvec)(half + 127) << 23);
  const vec scale_b = (vec)((uvec)(n_int - half + 127) << 23);
  return v * scale_a * scale_b;
#endif
}

// e^(k r) by exp's polynomial (scaled_exp_reduced) in k r, k r within exp's reduced range, taken in
// Horner form in r with coefficient i times k^i: folded at compile time, and for k a power of 2
// exact, so the roundings are those of the polynomial in k r without forming k r.
inline vec exp_polynomial(vec r, float k) {
  const float coefficients[] = {1.0f, 1.0f, 4.9999994e-1f, 1.666652e-1f, 4.1668393e-2f, 8.368747e-3f, 1.3814518e-3f};
  float k_powers[7] = {1.0f};
  for (int i = 1; i < 7; ++i) k_powers[i] = k_powers[i - 1] * k;
  vec p = splat(coefficients[6] * k_powers[6]);
  for (int i = 5; i >= 0; --i) p = p * r + coefficients[i] * k_powers[i];
  return p;
}

// exp's reduction: e^x = 2^n e^r with n = round(x / ln2) and r = x - n ln2 in [-ln2/2, ln2/2], ln2
// split in a hi part exact in float times any n here and a lo part. kRoundingMagic rounds x / ln2
// (|x / ln2| < 2^22).
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;

inline vec round_to_integer(vec x) { return (x + kRoundingMagic) - kRoundingMagic; }

// factor * 2^n e^r for r in exp's reduced range (or a little past it) and integral n in
// [-150, 129]: e^r = 1 + r + r^2 p(r), p of degree 4 fitted to e^r's relative error (4.6e-9 with
// these float coefficients, well under the roundings; Cephes expf's degree 5 is one FMA more), so
// e^x is within ~1 ULP. All of it in Horner form, 1 + r (1 + r p(r)): one instruction fewer than
// 1 + r + r^2 p(r), the same worst errors over the activation tests' sweep.
inline vec scaled_exp_reduced(vec factor, vec r, vec n) {
  return times_power_of_2(factor * exp_polynomial(r, 1.0f), n);
}

// e^x for x in [-104, 89] (or NaN, which propagates), so that n never leaves [-150, 129].
inline vec exp_in_range(vec x) {
  const vec n = round_to_integer(x * kLog2e);
  return scaled_exp_reduced(splat(1.0f), (x - n * kLn2Hi) - n * kLn2Lo, n);
}

// Below -104 e^x rounds to 0 and above 89 it overflows to inf; NaN passes the clamp. Most callers
// know x <= 0 and save the upper clamp's instruction.
inline vec exp(vec x) { return exp_in_range(clamp(x, -104.0f, 89.0f)); }
inline vec exp_nonpositive(vec x) { return exp_in_range(at_least(x, -104.0f)); }

// -a^2/2 - t rounded once, given half = -a/2, for t = 0 or within a factor of 2 of -a^2/2 (the
// reduction's n ln2_hi in e^(-a^2/2)). FMA: one fused multiply-subtract. Without (SSE2): a = hi + lo
// with hi its top 12 bits, so hi (-hi/2) is exact, and so is its difference with t (Sterbenz),
// then plus the rest, (-lo/2) (a + hi), a small correction.
inline vec negative_half_square_minus(vec a, vec half, vec t) {
#if defined(__AVX512F__)
  return (vec)_mm512_fmsub_ps((__m512)a, (__m512)half, (__m512)t);
#elif defined(__FMA__)
  return (vec)_mm256_fmsub_ps((__m256)a, (__m256)half, (__m256)t);
#else
  const vec hi = (vec)((ivec)a & int(0xfffff000));
  const vec lo = a - hi;
  return (-0.5f * hi * hi - t) + -0.5f * lo * (a + hi);
#endif
}

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
