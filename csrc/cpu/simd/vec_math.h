// Vector math shared by the per-ISA sources (activations, softmax): included after vec.h, so
// each copy lives in that build's ISA namespace. Every function is branch-free and safe for
// every input: both sides of a select are computed.
#pragma once
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {

typedef int ivec __attribute__((vector_size(kWidth * sizeof(int))));
typedef unsigned uvec __attribute__((vector_size(kWidth * sizeof(unsigned))));

inline vec abs(vec x) { return (vec)((ivec)x & 0x7fffffff); }

// factor * e^(x + x_lo), x_lo a small correction (|x_lo| < 0.1) that carries the low bits of an
// argument too precise for one float. e^x = 2^n * e^r with n = round(x / ln2) and r = x - n ln2
// in [-ln2/2, ln2/2] (ln2 split in a hi part exact in float times any n here, and a lo part),
// e^r by the Cephes expf polynomial (1 + r + r^2 p(r), p of degree 5), within ~1 ULP. x is
// clamped to [-104, 89] first: below -104 e^x rounds to 0 and above 89 the scaling overflows to
// inf, so n never leaves [-150, 129]. 2^n is applied last as two factors 2^(n/2) 2^(n - n/2),
// each a normal float, so a result in the subnormal range (factor included) rounds once. NaN
// fails both clamp tests and propagates.
inline vec scaled_exp(vec factor, vec x, vec x_lo) {
  x = x < -104.0f ? splat(-104.0f) : x;
  x = x > 89.0f ? splat(89.0f) : x;
  const vec magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const vec shifted = (x + x_lo) * 1.44269504088896341f + magic;
  const vec n = shifted - magic;
  vec r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f + x_lo;
  vec p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const ivec n_int = (ivec)shifted - (ivec)magic;
  const ivec half = n_int >> 1;
  const vec scale_a = (vec)((uvec)(half + 127) << 23);
  const vec scale_b = (vec)((uvec)(n_int - half + 127) << 23);
  return factor * p * scale_a * scale_b;
}

inline vec exp(vec x) { return scaled_exp(splat(1.0f), x, vec{}); }

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
