// Activation kernels written with GCC vector extensions, so the same source becomes AVX-512,
// AVX2+FMA or SSE2 code depending on the -m flags of the translation unit. exp, sigmoid and
// tanh are branch-free vector code accurate to ~1-2 ULP; both sides of every select are
// computed, so each path must be safe (no overflow into garbage) for every input.
#include <cmath>
#include <cstring>

#include "cpu/simd/activation_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

typedef int ivec __attribute__((vector_size(kWidth * sizeof(int))));
typedef unsigned uvec __attribute__((vector_size(kWidth * sizeof(unsigned))));


// y[0:n] = f(x[0:n]) one vector at a time; the tail goes through a zero-padded vector.
template <class F>
void map(int64_t n, const float* x, float* y, F f) {
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) store(y + i, f(load(x + i)));
  if (i < n) {
    vec tail = {};
    std::memcpy(&tail, x + i, (n - i) * sizeof(float));
    tail = f(tail);
    std::memcpy(y + i, &tail, (n - i) * sizeof(float));
  }
}

// y[0:n] = f(a[0:n], b[0:n]).
template <class F>
void map2(int64_t n, const float* a, const float* b, float* y, F f) {
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) store(y + i, f(load(a + i), load(b + i)));
  if (i < n) {
    vec tail_a = {}, tail_b = {};
    std::memcpy(&tail_a, a + i, (n - i) * sizeof(float));
    std::memcpy(&tail_b, b + i, (n - i) * sizeof(float));
    vec tail = f(tail_a, tail_b);
    std::memcpy(y + i, &tail, (n - i) * sizeof(float));
  }
}

inline vec abs(vec x) { return (vec)((ivec)x & 0x7fffffff); }
// |magnitude| with the sign of `sign`.
inline vec copysign(vec magnitude, vec sign) {
  return (vec)(((ivec)magnitude & 0x7fffffff) | ((ivec)sign & int(0x80000000)));
}

// e^x = 2^n * e^r with n = round(x / ln2) and r = x - n ln2 in [-ln2/2, ln2/2] (ln2 split in a
// hi part exact in float times any n here, and a lo part), e^r by the Cephes expf polynomial
// (1 + r + r^2 p(r), p of degree 5), within ~1 ULP. x is clamped to [-104, 89] first: below
// -104 e^x rounds to 0 and above 89 the scaling overflows to inf, so n never leaves [-150, 129].
// 2^n is applied as two factors 2^(n/2) 2^(n - n/2), each a normal float, so results in the
// subnormal range round once. NaN fails both clamp tests and propagates.
inline vec exp(vec x) {
  x = x < -104.0f ? splat(-104.0f) : x;
  x = x > 89.0f ? splat(89.0f) : x;
  const vec magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer in the low bits
  const vec shifted = x * 1.44269504088896341f + magic;
  const vec n = shifted - magic;
  vec r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
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
  return p * scale_a * scale_b;
}

// 1 / (1 + e^-x), as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 with e = e^-|x| <= 1:
// nothing overflows and the negative tail keeps full relative precision.
inline vec sigmoid(vec x) {
  const vec e = exp(-abs(x));
  return (x < 0.0f ? e : splat(1.0f)) / (1.0f + e);
}

// sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = e^-|x|: no 1 - s cancellation.
inline vec sigmoid_slope(vec x) {
  const vec e = exp(-abs(x));
  const vec d = 1.0f + e;
  return e / (d * d);
}

// Cephes tanhf: an odd polynomial x + x^3 q(x^2) for |x| < 0.625 (full relative precision near
// 0), 1 - 2 / (e^2|x| + 1) above (saturates to 1 as e^2|x| overflows to inf); sign restored.
inline vec tanh(vec x) {
  const vec a = abs(x);
  const vec z = a * a;
  vec q = splat(-5.70498872745e-3f);
  q = q * z + 2.06390887954e-2f;
  q = q * z - 5.37397155531e-2f;
  q = q * z + 1.33314422036e-1f;
  q = q * z - 3.33332819422e-1f;
  const vec small = q * z * a + a;
  const vec large = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return copysign(a < 0.625f ? small : large, x);
}

// GELU with the tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// 1 + tanh(u) = 2 sigmoid(2u), and x sigmoid(2u) does not cancel for negative x as 1 + tanh does.
constexpr float kGeluTwoSqrt2OverPi = 1.5957691216057308f;  // 2 sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

inline vec gelu_tanh_arg(vec x) { return kGeluTwoSqrt2OverPi * (x + kGeluCubic * x * x * x); }

inline vec gelu_tanh(vec x) { return x * sigmoid(gelu_tanh_arg(x)); }

// d/dx x sigmoid(v) = sigmoid(v) + x sigmoid'(v) v', v = 2u. Where sigmoid'(v) is exactly 0 the
// second term is 0, even when x v' overflows to inf for |x| > ~1e19.
inline vec gelu_tanh_slope(vec x) {
  const vec v = gelu_tanh_arg(x);
  const vec ds = sigmoid_slope(v);
  const vec dv = kGeluTwoSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
  const vec second = ds == 0.0f ? splat(0.0f) : x * ds * dv;
  return sigmoid(v) + second;
}

void relu(int64_t n, const float* x, float* y) {
  map(n, x, y, [](vec v) { return v < 0.0f ? splat(0.0f) : v; });  // NaN passes through, as torch
}

void relu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return v > 0.0f ? g : splat(0.0f); });  // relu'(0) = 0
}

void leaky_relu(int64_t n, const float* x, float negative_slope, float* y) {
  map(n, x, y, [=](vec v) { return v > 0.0f ? v : v * negative_slope; });
}

void leaky_relu_backward(int64_t n, const float* grad_y, const float* x, float negative_slope, float* grad_x) {
  map2(n, grad_y, x, grad_x, [=](vec g, vec v) { return v > 0.0f ? g : g * negative_slope; });
}

void sigmoid(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return sigmoid(v); }); }

void sigmoid_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return g * sigmoid_slope(v); });
}

void sigmoid_backward_from_output(int64_t n, const float* grad_y, const float* y, float* grad_x) {
  map2(n, grad_y, y, grad_x, [](vec g, vec s) { return g * (s * (1.0f - s)); });
}

void tanh(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return tanh(v); }); }

// tanh'(x) = 1 - tanh(x)^2 = 4 sigmoid'(2x), which keeps full precision where tanh saturates.
void tanh_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return g * (4.0f * sigmoid_slope(2.0f * v)); });
}

void tanh_backward_from_output(int64_t n, const float* grad_y, const float* y, float* grad_x) {
  map2(n, grad_y, y, grad_x, [](vec g, vec t) { return g * (1.0f - t * t); });
}

// Exact GELU x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2, in a plain scalar loop: there is no
// vector erf here yet. Double precision, because rounding -x/sqrt2 to float would cost ~x^2 ULPs
// in the tiny negative tail, and erfc (not 1 + erf) keeps that tail's relative precision.
constexpr double kSqrtHalf = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

void gelu(int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    y[i] = float(0.5 * v * std::erfc(-v * kSqrtHalf));
  }
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density.
void gelu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  for (int64_t i = 0; i < n; ++i) {
    const double v = x[i];
    const double slope = 0.5 * std::erfc(-v * kSqrtHalf) + v * kInvSqrt2Pi * std::exp(-0.5 * v * v);
    grad_x[i] = float(grad_y[i] * slope);
  }
}

void gelu_tanh(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return gelu_tanh(v); }); }

void gelu_tanh_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return g * gelu_tanh_slope(v); });
}

}  // namespace

extern const ActivationKernels activation_kernels = {
    relu,          sigmoid,          tanh,          gelu,          gelu_tanh,
    relu_backward, sigmoid_backward, tanh_backward, gelu_backward, gelu_tanh_backward,
    sigmoid_backward_from_output,    tanh_backward_from_output,
    leaky_relu,    leaky_relu_backward,
};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
