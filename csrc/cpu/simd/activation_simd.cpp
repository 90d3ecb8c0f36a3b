// Activation kernels written with GCC vector extensions, so the same source becomes AVX-512,
// AVX2+FMA or SSE2 code depending on the -m flags of the translation unit. exp, sigmoid and
// tanh are branch-free vector code accurate to ~1-2 ULP (exp in vec_math.h); both sides of
// every select are computed, so each path must be safe (no overflow into garbage) for every input.
// Each activation is a chain of ~25-50 dependent operations of ~4 cycles: with one vector per
// loop iteration the out-of-order window holds too few chains to keep both FMA ports busy. The
// loops below take `unroll` vectors at a time (4 unless the chains need so many registers that
// four spill), and scheduling before register allocation (off by default on x86) interleaves
// their chains: 1.1-1.45x on the exp-based ops, 1 thread, L2-sized.
#pragma GCC optimize("schedule-insns", "sched-pressure")

#include <cstring>

#include "cpu/dropout_slice.h"
#include "cpu/simd/activation_pieces.h"
#include "cpu/simd/activation_simd.h"
#include "cpu/simd/stream.h"
#include "cpu/simd/vec_math.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

// put(y + j, result) for the vectors j = i, i + kWidth, ... that fit before n, their results from
// group(j, v) (`unroll` vectors from element j into v) and, past the last whole group, at(j) (the
// vector at element j); returns where they stop.
template <int unroll, class Put, class Group, class At>
int64_t put_vectors(int64_t i, int64_t n, float* y, Put put, Group group, At at) {
  for (; i + unroll * kWidth <= n; i += unroll * kWidth) {
    vec v[unroll];
    group(i, v);
    for (int u = 0; u < unroll; ++u) put(y + i + u * kWidth, v[u]);
  }
  for (; i + kWidth <= n; i += kWidth) put(y + i, at(i));
  return i;
}

// group(i, v) that fills v with at(i), at(i + kWidth), ...
template <int unroll, class At>
auto each(At at) {
  return [at](int64_t i, vec(&v)[unroll]) {
    for (int u = 0; u < unroll; ++u) v[u] = at(i + u * kWidth);
  };
}

// y[0:n] from group and at (put_vectors), and padded(i, count), the result for the count < kWidth
// elements from i through zero-padded inputs: a head up to y's vector alignment (when streaming)
// and the tail.
template <int unroll, class Group, class At, class Padded>
void apply(int64_t n, float* y, Group group, At at, Padded padded) {
  const auto partial = [&](int64_t i, int64_t count) {
    const vec part = padded(i, count);
    std::memcpy(y + i, &part, count * sizeof(float));
  };
  int64_t i = 0;
  if (n * int64_t(sizeof(float)) >= kStreamingMinBytes) {
    i = until_aligned(y, n);
    partial(0, i);
    i = put_vectors<unroll>(i, n, y, [](float* p, vec v) { stream(p, v); }, group, at);
    stream_fence();
  }
  i = put_vectors<unroll>(i, n, y, [](float* p, vec v) { store(p, v); }, group, at);
  if (i < n) partial(i, n - i);
}

// x[i:i + count] in a zero-padded vector.
inline vec load_padded(const float* x, int64_t i, int64_t count) {
  vec part = {};
  std::memcpy(&part, x + i, count * sizeof(float));
  return part;
}

// Inputs are prefetched kPrefetchAhead (4 KB) ahead: the exp-based ops spend so long per vector
// that the hardware prefetcher alone kept too few lines in flight from memory (2 threads, 16M
// floats: sigmoid 22-33 -> 37 GB/s, GELU 17-19 -> 23, sigmoid backward 28-30 -> 33-41; in L2, no
// change).
// With it the forwards keep their L2 rate from memory (2 threads, Gelem/s at 16M / 256K floats,
// medians of 7 alternated processes: tanh 4.16 / 4.17, sigmoid 5.63 / 5.57, GELU 3.31 / 3.14), so
// what they miss of the copy bandwidth is arithmetic; slower 16M runs came with other load on the
// machine. Alternated per call in one process (20-30 pairs), 512, 2048 and 4096 ahead ran alike,
// 256 slower (1/20), none 25% slower; prefetcht1, an added L2 prefetch 16 KB ahead, thread slices
// skewed or interleaved in 64 KB / 1 MB blocks, and the input's offset to the output in a page were
// within noise or slower; prefetchnta halved the rate. Those 16M-float (64 MB) inputs stayed in the
// VM's 260 MiB L3 across calls; from memory (64M floats, 2 threads, 3 alternated processes each,
// GB/s for sigmoid / tanh / GELU forwards) 256 ahead moved 28-31 / 25-27 / 22-24 where 1024 moved
// 34-38 / 30-34 / 26-31 (one run, where relu fell to 24 too, left out), and 4096 ahead 32-34 /
// 27-30 / 23-26. Per core tanh and GELU compute 2.7 and 2.2 Gelem/s from L2 (1 thread), about
// what one core streams from memory (2.5), and reach 72-80% and 66-76% of the copy bandwidth at 2
// threads: the rest is arithmetic not overlapped with the misses. Hence the AVX-512 pieces below.

inline vec load_prefetching(const float* p) {
  __builtin_prefetch(p + kPrefetchAhead);
  return load(p);
}

// y[0:n] = f(x[0:n]).
template <class F>
void map(int64_t n, const float* x, float* y, F f) {
  const auto at = [&](int64_t i) { return f(load_prefetching(x + i)); };
  apply<4>(n, y, each<4>(at), at, [&](int64_t i, int64_t count) { return f(load_padded(x, i, count)); });
}

// y[0:n] = f(a[0:n], b[0:n]).
template <int unroll = 4, class F>
void map2(int64_t n, const float* a, const float* b, float* y, F f) {
  const auto at = [&](int64_t i) { return f(load_prefetching(a + i), load_prefetching(b + i)); };
  apply<unroll>(n, y, each<unroll>(at), at,
                [&](int64_t i, int64_t count) { return f(load_padded(a, i, count), load_padded(b, i, count)); });
}

// magnitude (>= 0 or +0) with the sign of `sign`: one bitwise select, no clearing of a sign bit
// that is already clear.
inline vec with_sign_of(vec magnitude, vec sign) { return (vec)((ivec)magnitude | ((ivec)sign & int(0x80000000))); }

// 1 / (1 + e^-x), as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0 with e = e^-|x| <= 1:
// nothing overflows and the negative tail keeps full relative precision. e / (1 + e) as e times
// the reciprocal: on AVX-512 one masked multiply where dividing a selected numerator took a
// select and one more instruction (1.04x, 1 thread, L2-sized; worst error 2.3 -> 2.7 ULP).
inline vec sigmoid(vec x) {
  const vec e = exp_nonpositive(negative_abs(x));
  const vec s = reciprocal(1.0f + e);
  return x < 0.0f ? e * s : s;
}

// sigmoid'(x) = sigmoid(x) (1 - sigmoid(x)) = e / (1 + e)^2 with e = e^-|x|: no 1 - s cancellation.
inline vec sigmoid_slope(vec x) {
  const vec e = exp_nonpositive(negative_abs(x));
  const vec d = 1.0f + e;
  return divide(e, d * d);
}

// e^(-2a) for a in [0, 9.5] (or NaN), with exp's steps in two fewer operations: n = round(-2a / ln2)
// and s = a + n ln2/2 in [-ln2/4, ln2/4], so e^(-2a) = 2^n e^(-2s) with the -2 folded into the
// polynomial's coefficients rather than formed as -2a; and n >= -28 lets ln2/2 be one float, not
// exp's hi + lo pair: its error of 1e-9 moves e^(-2a) by 28 * 2e-9 relative at most, where
// e^(-2a) < 1e-8 is far below tanh's rounding.
inline vec exp_minus_twice(vec a) {
  const vec n = round_to_integer(a * (-2.0f * kLog2e));
  const vec s = a + n * 0.346573590279972655f;
  return times_power_of_2(exp_polynomial(s, -2.0f), n);
}

// Cephes tanhf: an odd polynomial x + x^3 q(x^2) for |x| < 0.625 (full relative precision near
// 0), (1 - e) / (1 + e) = 1 - 2e / (1 + e) with e = e^-2|x| <= 0.29 above (no cancellation; |x|
// clamped to 9.5, past which it rounds to 1), formed as 1 - e * (1 / (0.5 + 0.5e)): a reciprocal
// and two fused operations where 1 - e, 1 + e and a division took one more; sign restored.
inline vec tanh(vec x) {
  const vec a = abs(x);
  const vec z = a * a;
  const vec q = horner(z, {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f,
                           -3.33332819422e-1f});
  const vec small = q * z * a + a;
  const vec e = exp_minus_twice(at_most(a, 9.5f));
  const vec large = 1.0f - e * reciprocal(0.5f + 0.5f * e);
  return with_sign_of(a < 0.625f ? small : large, x);
}

// GELU with the tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
// 1 + tanh(u) = 2 sigmoid(2u), and x sigmoid(2u) does not cancel for negative x as 1 + tanh does.
constexpr float kGeluTwoSqrt2OverPi = 1.5957691216057308f;  // 2 sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

inline vec gelu_tanh_arg(vec x) { return kGeluTwoSqrt2OverPi * (x + kGeluCubic * x * x * x); }

inline vec gelu_tanh(vec x) { return x * sigmoid(gelu_tanh_arg(x)); }

// d/dx x sigmoid(v) = sigmoid(v) + x sigmoid'(v) v', v = 2u. With e = e^-|v| and r = 1 / (1 + e),
// sigmoid(v) = (v < 0 ? e : 1) r and sigmoid'(v) = e r^2: one reciprocal serves both. Where
// sigmoid'(v) is exactly 0 the second term is 0, even when x v' overflows to inf for |x| > ~1e19.
inline vec gelu_tanh_slope(vec x) {
  const vec v = gelu_tanh_arg(x);
  const vec e = exp_nonpositive(negative_abs(v));
  const vec r = reciprocal(1.0f + e);
  const vec ds = e * r * r;
  const vec dv = kGeluTwoSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
  const vec second = ds == 0.0f ? splat(0.0f) : x * ds * dv;
  return (v < 0.0f ? e : splat(1.0f)) * r + second;
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


// tanh'(x) = 1 - tanh(x)^2 = 4 sigmoid'(2x), which keeps full precision where tanh saturates.
void tanh_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return g * (4.0f * sigmoid_slope(2.0f * v)); });
}

void tanh_backward_from_output(int64_t n, const float* grad_y, const float* y, float* grad_x) {
  map2(n, grad_y, y, grad_x, [](vec g, vec t) { return g * (1.0f - t * t); });
}

// Exact GELU x Phi(x), Phi the standard normal CDF, through the upper tail Q(a) = 1 - Phi(a) =
// e^(-a^2/2) R(a) for a = |x|: Phi(x) = Q(a) for x < 0 and 1 - Q(a) (>= 1/2, no cancellation)
// for x >= 0. R = Q e^(a^2/2) is smooth (1/2 at 0, ~1/(a sqrt(2 pi)) for large a): a degree-10
// polynomial in u = 1 / (1 + 0.4 a), least-squares fitted to relative error 4.5e-8 on
// [0, 14.5] (float coefficients; ~2.5 ULP once u and Horner round). e^(-a^2/2) must see the
// exact square: a float a^2 is off by up to 2^-24 a^2, which is ~50 ULP of e^(-a^2/2) at a = 14.
// So exp's reduction -a^2/2 - n ln2_hi is taken from the exact product, rounded once
// (negative_half_square_minus). a is clamped to 14.4: -a^2/2 >= -103.7 stays in exp's range
// with no clamp there, and x Q(a) at -14.4 is -3.7e-46, which rounds to -0, so every
// x < -14.4 gives -0 and every x > 14.4 gives x - 0 without a select of their own (x Phi(x) rounds
// so past 14.4).
constexpr float kGeluTail = 14.4f;
constexpr float kInvSqrt2Pi = 0.398942280f;

template <class V>
V normal_tail_polynomial(V u) {
  return horner(u, {2.958330140e-02f, -1.620294750e-01f, 3.460986018e-01f, -3.232944310e-01f, 7.458541542e-02f,
                    -7.108284626e-04f, 8.124759793e-02f, 1.356814057e-01f, 1.592287272e-01f, 1.596109867e-01f,
                    -1.313906751e-06f});
}

// R(a), a in [0, kGeluTail]. The polynomial's terms alternate in sign and cancel, so its roundings
// grow: with FMA (one rounding per step) GELU stays within 5.74 ULP over every other float in
// 1 <= |x| <= 4; without (SSE2: two per step) it reached 6.44 at x = -1.824, so there u and the
// polynomial run in double.
inline vec normal_tail_ratio(vec a) {
#if defined(__FMA__)
  return normal_tail_polynomial(reciprocal(1.0f + 0.4f * a));
#else
  typedef double double_pair __attribute__((vector_size(2 * sizeof(double))));  // one SSE2 register
  vec ratio;
  for (int i = 0; i < kWidth; i += 2) {
    const double_pair r = normal_tail_polynomial(1.0 / (1.0 + 0.4 * double_pair{a[i], a[i + 1]}));
    ratio[i] = float(r[0]);
    ratio[i + 1] = float(r[1]);
  }
  return ratio;
#endif
}

// factor * e^(-a^2/2) for a in [0, kGeluTail]: n from the rounded square, the reduced argument
// from the exact one as above.
inline vec scaled_half_gaussian(vec factor, vec a) {
  const vec half = -0.5f * a;
  const vec n = round_to_integer(a * half * kLog2e);
  return scaled_exp_reduced(factor, negative_half_square_minus(a, half, n * kLn2Hi) - n * kLn2Lo, n);
}

// v = a Q(a) with a = |x| clamped to the tail, then x Phi(x) = x - v for x >= 0 and -v = x Q(a) for
// x < 0, there as x * 0 - v: NaN at -inf (-inf * 0), as in torch, and -0 past the tail.
inline vec gelu(vec x) {
  const vec a = at_most(abs(x), kGeluTail);
  const vec v = scaled_half_gaussian(a * normal_tail_ratio(a), a);
  return (x < 0.0f ? x * 0.0f : x) - v;
}

// R(a) as normal_tail_ratio, for the slope: fitted to the absolute error of e^(-a^2/2) R(a)
// (8.4e-8 with float coefficients and Horner, where the slope keeps 2^-22), which the Gaussian
// factor lets a degree-6 polynomial in the same u reach where the relative fit takes degree 10.
inline vec normal_tail_ratio_absolute(vec a) {
  return horner(reciprocal(1.0f + 0.4f * a), {4.934102669e-02f, -2.224908471e-01f, 2.790443897e-01f, 7.344596833e-02f,
                                              1.554331332e-01f, 1.663847417e-01f, -1.158418949e-03f});
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi): with D = e^(-a^2/2)
// (a / sqrt(2 pi) - R(a)) it is 1 + D for x >= 0 and -D for x < 0. D is 0 near a = 0.75, where
// the slope crosses 0: there it is accurate in absolute terms (~1e-7), not relative. Absolute
// accuracy is all the slope keeps, so e^(-a^2/2) takes the rounded square: its relative error
// a^2/2 2^-24 moves D by ~2e-8 at most. Past the tail (a clamped to 14.4) D is below 1e-44, so the
// slope there is 1 or within 1e-44 of 0 without a select; x * 0 makes it NaN at +-inf, as in torch.
inline vec gelu_slope(vec x) {
  const vec a = at_most(abs(x), kGeluTail);
  const vec d = exp_in_range(-0.5f * a * a) * (a * kInvSqrt2Pi - normal_tail_ratio_absolute(a));
  return (x < 0.0f ? -d : 1.0f + d) + x * 0.0f;
}

// AVX-512 evaluates GELU, its slope and tanh for |x| < kPiecesEdge = 3.875 (a vector of
// normal(0, 1) inputs lies all inside 99.8% of the time) as a polynomial in t = x - c on each of
// 32 intervals of width 1/4 centred on c = (j - 16) / 4, its coefficients picked per lane by a
// two-register permute: one permute and one FMA per term where the general paths above take
// ~25-35 operations. The tables (activation_pieces.h, from dev/fit_pieces.py) are fitted to the
// relative error of GELU (1.2e-9) and tanh (6.4e-9), and to the absolute error of the slope
// (2.7e-9, degree 5); in float, over every x with 2^-10 <= |x| < 3.875, GELU is within 1.80 ULP
// (its erfc path reaches 6.22) and tanh within 1.35; the slope within 1.13e-7 over 8M points.
// j is the low 5 bits of round(4x) + 16 + kRoundingMagic (a multiple of 32), and t = x - c is
// exact (c is a multiple of 1/4 within 1/8 of x).
#if defined(__AVX512F__)
template <int terms>
inline vec in_pieces(const float (&table)[terms][kPieces], vec x) {
  constexpr float offset = kRoundingMagic + kPieces / 2;
  const vec rounded = x * 4.0f + offset;
  const vec t = x - 0.25f * (rounded - offset);
  const __m512i piece = (__m512i)rounded;
  const auto coefficient = [&](int i) {
    return (vec)_mm512_permutex2var_ps(_mm512_load_ps(table[i]), piece, _mm512_load_ps(table[i] + 16));
  };
  // Fused by hand: the bounds above assume one rounding per step, which contraction does not
  // promise (the sanitizer build's Horner rounded twice: 2.05 ULP).
  vec p = coefficient(terms - 1);
  for (int i = terms - 2; i >= 0; --i) p = (vec)_mm512_fmadd_ps((__m512)p, (__m512)t, (__m512)coefficient(i));
  return p;
}

// v[u] = f(v[u]) for a group of vectors: through the table when every lane of the group is
// inside the range (NaN is not), else through general(v). One branch per group: with a branch per
// vector, the general path's chains ran one vector at a time, 2x slower when most vectors left the
// range (x ~ normal(0, 3)).
template <int terms, int count, class General>
inline void in_pieces_or(const float (&table)[terms][kPieces], vec (&v)[count], General general) {
  __mmask16 inside = 0xffff;
  for (int u = 0; u < count; ++u)
    inside &= _mm512_cmp_ps_mask((__m512)abs(v[u]), _mm512_set1_ps(kPiecesEdge), _CMP_LT_OQ);
  if (inside == 0xffff) {
    for (int u = 0; u < count; ++u) v[u] = in_pieces(table, v[u]);
  } else {
    for (int u = 0; u < count; ++u) v[u] = general(v[u]);
  }
}
#else
template <int terms, int count, class General>
inline void in_pieces_or(const float (&)[terms][kPieces], vec (&v)[count], General general) {
  for (int u = 0; u < count; ++u) v[u] = general(v[u]);
}
#endif

template <int terms, class General>
inline vec in_pieces_or(const float (&table)[terms][kPieces], vec x, General general) {
  vec v[1] = {x};
  in_pieces_or(table, v, general);
  return v[0];
}

// y[0:n] = f(x[0:n]), f given by `table` inside the pieces' range and by `general` anywhere.
template <int terms, class General>
void map_pieces(int64_t n, const float* x, float* y, const float (&table)[terms][kPieces], General general) {
  const auto f = [&](vec v) { return in_pieces_or(table, v, general); };
  const auto group = [&](int64_t i, vec(&v)[4]) {
    for (int u = 0; u < 4; ++u) v[u] = load_prefetching(x + i + u * kWidth);
    in_pieces_or(table, v, general);
  };
  apply<4>(n, y, group, [&](int64_t i) { return f(load_prefetching(x + i)); },
           [&](int64_t i, int64_t count) { return f(load_padded(x, i, count)); });
}

// grad_x[0:n] = grad_y[0:n] * f'(x[0:n]), f' given as map_pieces' f.
template <int terms, class General>
void map2_pieces(int64_t n, const float* grad_y, const float* x, float* grad_x, const float (&table)[terms][kPieces],
                 General general) {
  const auto slope = [&](vec v) { return in_pieces_or(table, v, general); };
  const auto group = [&](int64_t i, vec(&v)[4]) {
    for (int u = 0; u < 4; ++u) v[u] = load_prefetching(x + i + u * kWidth);
    in_pieces_or(table, v, general);
    for (int u = 0; u < 4; ++u) v[u] = load_prefetching(grad_y + i + u * kWidth) * v[u];
  };
  apply<4>(n, grad_x, group, [&](int64_t i) { return load_prefetching(grad_y + i) * slope(load_prefetching(x + i)); },
           [&](int64_t i, int64_t count) { return load_padded(grad_y, i, count) * slope(load_padded(x, i, count)); });
}

void gelu(int64_t n, const float* x, float* y) {
  map_pieces(n, x, y, kGeluPieces, [](vec v) { return gelu(v); });
}

void gelu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2_pieces(n, grad_y, x, grad_x, kGeluSlopePieces, [](vec v) { return gelu_slope(v); });
}

void tanh(int64_t n, const float* x, float* y) {
  map_pieces(n, x, y, kTanhPieces, [](vec v) { return tanh(v); });
}

void gelu_tanh(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return gelu_tanh(v); }); }

void gelu_tanh_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2<2>(n, grad_y, x, grad_x, [](vec g, vec v) { return g * gelu_tanh_slope(v); });  // 4 spill
}

}  // namespace

extern const ActivationKernels activation_kernels = {
    relu,          sigmoid,          tanh,          gelu,          gelu_tanh,
    relu_backward, sigmoid_backward, tanh_backward, gelu_backward, gelu_tanh_backward,
    sigmoid_backward_from_output,    tanh_backward_from_output,
    leaky_relu,    leaky_relu_backward,
    dropout_slice<float>,
};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
