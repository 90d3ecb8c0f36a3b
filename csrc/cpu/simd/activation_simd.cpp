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
// threads: the rest is arithmetic not overlapped with the misses.

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

void tanh(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return tanh(v); }); }

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

#if defined(__AVX512F__)
// AVX-512: for |x| < 3.875 (a vector of normal(0, 1) inputs lies all inside 99.8% of the time)
// x Phi(x) is a degree-6 polynomial in t = x - c on each of 32 intervals of width 1/4 centred on
// c = (j - 16) / 4, its coefficients picked per lane by a two-register permute: 7 permutes and 6
// FMAs where gelu() takes ~35 operations. Fitted to the relative error (1.2e-9; the table is
// dev/fit_gelu_pieces.py's output): 1.80 ULP at worst in float over every x with
// 2^-10 <= |x| < 3.875, where gelu() reaches 6.22. j is the low 5 bits of
// round(4x) + 16 + kRoundingMagic (a multiple of 32), and t = x - c is exact (c is a multiple of
// 1/4 within 1/8 of x); the interval around 0 has no constant term, so tiny x keep full relative
// precision.
constexpr float kGelu4Pieces = 3.875f;
alignas(64) constexpr float kGeluPieceCoefficients[7][32] = {
    {-1.266849722e-04f, -3.315648064e-04f, -8.142017759e-04f, -1.875331393e-03f,
     -4.049694166e-03f, -8.194348775e-03f, -1.552416291e-02f, -2.750506438e-02f,
     -4.550026357e-02f, -7.010352612e-02f, -1.002108008e-01f, -1.320622116e-01f,
     -1.586552560e-01f, -1.699705124e-01f, -1.542687714e-01f, -1.003234163e-01f,
     0.000000000e+00f, 1.496765763e-01f, 3.457312286e-01f, 5.800294876e-01f,
     8.413447738e-01f, 1.117937803e+00f, 1.399789214e+00f, 1.679896474e+00f,
     1.954499722e+00f, 2.222494841e+00f, 2.484475851e+00f, 2.741805553e+00f,
     2.995950222e+00f, 3.248124599e+00f, 3.499185801e+00f, 3.749668360e+00f},
    {-5.036496441e-04f, -1.233816496e-03f, -2.821760252e-03f, -6.017380860e-03f,
     -1.194564719e-02f, -2.202753350e-02f, -3.761108592e-02f, -5.918974429e-02f,
     -8.523180336e-02f, -1.109261513e-01f, -1.274691969e-01f, -1.226615831e-01f,
     -8.331546932e-02f, 7.742794114e-04f, 1.325048804e-01f, 3.046266437e-01f,
     5.000000000e-01f, 6.953733563e-01f, 8.674951196e-01f, 9.992257357e-01f,
     1.083315492e+00f, 1.122661591e+00f, 1.127469182e+00f, 1.110926151e+00f,
     1.085231781e+00f, 1.059189796e+00f, 1.037611127e+00f, 1.022027493e+00f,
     1.011945605e+00f, 1.006017327e+00f, 1.002821803e+00f, 1.001233816e+00f},
    {-9.368114988e-04f, -2.126592677e-03f, -4.472499248e-03f, -8.686862886e-03f,
     -1.551147085e-02f, -2.529147267e-02f, -3.724763915e-02f, -4.860134050e-02f,
     -5.399096385e-02f, -4.583482444e-02f, -1.618969627e-02f, 3.995448723e-02f,
     1.209853664e-01f, 2.164425254e-01f, 3.080571592e-01f, 3.745847344e-01f,
     3.989422917e-01f, 3.745847344e-01f, 3.080571592e-01f, 2.164425403e-01f,
     1.209853664e-01f, 3.995448723e-02f, -1.618969999e-02f, -4.583482817e-02f,
     -5.399096757e-02f, -4.860134423e-02f, -3.724763915e-02f, -2.529147081e-02f,
     -1.551146898e-02f, -8.686861955e-03f, -4.472498782e-03f, -2.126592677e-03f},
    {-1.070637838e-03f, -2.217500238e-03f, -4.199807532e-03f, -7.212681230e-03f,
     -1.107969694e-02f, -1.484816149e-02f, -1.643281057e-02f, -1.264618244e-02f,
     2.361662155e-07f, 2.359180152e-02f, 5.666426569e-02f, 9.275158495e-02f,
     1.209850982e-01f, 1.293943971e-01f, 1.100197211e-01f, 6.343727559e-02f,
     3.523955017e-10f, -6.343729049e-02f, -1.100197360e-01f, -1.293943971e-01f,
     -1.209850982e-01f, -9.275158495e-02f, -5.666426569e-02f, -2.359180339e-02f,
     -2.375230821e-07f, 1.264618244e-02f, 1.643281244e-02f, 1.484816242e-02f,
     1.107969880e-02f, 7.212682627e-03f, 4.199807998e-03f, 2.217500471e-03f},
    {-8.253043634e-04f, -1.517870696e-03f, -2.483919729e-03f, -3.519350197e-03f,
     -4.062350839e-03f, -3.127189819e-03f, 5.022527766e-04f, 7.681757677e-03f,
     1.799674518e-02f, 2.896932513e-02f, 3.608907387e-02f, 3.421661258e-02f,
     2.016399428e-02f, -4.754515365e-03f, -3.392342478e-02f, -5.745993555e-02f,
     -6.649012119e-02f, -5.746055767e-02f, -3.392439708e-02f, -4.755389411e-03f,
     2.016357891e-02f, 3.421676531e-02f, 3.608964011e-02f, 2.896999381e-02f,
     1.799724065e-02f, 7.681949064e-03f, 5.021792022e-04f, -3.127399832e-03f,
     -4.062568303e-03f, -3.519502003e-03f, -2.483991906e-03f, -1.517884550e-03f},
    {-4.376989091e-04f, -6.723460392e-04f, -8.450471214e-04f, -7.287916378e-04f,
     9.854116797e-06f, 1.676540007e-03f, 4.271795508e-03f, 7.165412419e-03f,
     8.968135342e-03f, 7.893010043e-03f, 2.691327827e-03f, -6.202866323e-03f,
     -1.609723829e-02f, -2.275186963e-02f, -2.237408981e-02f, -1.389032789e-02f,
     -2.963493451e-08f, 1.389115024e-02f, 2.237465046e-02f, 2.275216579e-02f,
     1.609735005e-02f, 6.202903111e-03f, -2.691279631e-03f, -7.892933674e-03f,
     -8.968065493e-03f, -7.165390998e-03f, -4.271835089e-03f, -1.676620217e-03f,
     -9.939381926e-06f, 7.287291228e-04f, 8.450167952e-04f, 6.723419647e-04f},
    {-1.473771990e-04f, -1.542562677e-04f, -5.422132381e-05f, 2.388059220e-04f,
     7.688319893e-04f, 1.441262080e-03f, 1.940706745e-03f, 1.763869077e-03f,
     4.539561342e-04f, -2.003328875e-03f, -4.857051652e-03f, -6.678294390e-03f,
     -6.023174152e-03f, -2.407014836e-03f, 3.065550700e-03f, 8.012848906e-03f,
     9.940678254e-03f, 8.039606735e-03f, 3.107068362e-03f, -2.369727939e-03f,
     -6.005474832e-03f, -6.684910040e-03f, -4.881189205e-03f, -2.031880664e-03f,
     4.328833893e-04f, 1.755706966e-03f, 1.943861367e-03f, 1.450238749e-03f,
     7.781441091e-04f, 2.453050693e-04f, -5.113290172e-05f, -1.536628406e-04f},
};

inline vec gelu_in_pieces(vec x) {
  constexpr float offset = kRoundingMagic + 16.0f;
  const vec rounded = x * 4.0f + offset;
  const vec t = x - 0.25f * (rounded - offset);
  const __m512i piece = (__m512i)rounded;
  const auto coefficient = [&](int i) {
    return (vec)_mm512_permutex2var_ps(_mm512_load_ps(kGeluPieceCoefficients[i]), piece,
                                       _mm512_load_ps(kGeluPieceCoefficients[i] + 16));
  };
  vec p = coefficient(6);
  for (int i = 5; i >= 0; --i) p = p * t + coefficient(i);
  return p;
}

// The lanes of x inside the pieces' range (NaN is not).
inline __mmask16 in_pieces(vec x) {
  return _mm512_cmp_ps_mask((__m512)abs(x), _mm512_set1_ps(kGelu4Pieces), _CMP_LT_OQ);
}

inline vec gelu_fast(vec x) { return in_pieces(x) == 0xffff ? gelu_in_pieces(x) : gelu(x); }

// Groups of 4 vectors take the pieces or gelu() together: with a branch per vector, gelu()'s
// chains ran one vector at a time, 2x slower when most vectors left the range (x ~ normal(0, 3)).
void gelu(int64_t n, const float* x, float* y) {
  const auto group = [&](int64_t i, vec(&v)[4]) {
    __mmask16 inside = 0xffff;
    for (int u = 0; u < 4; ++u) {
      v[u] = load_prefetching(x + i + u * kWidth);
      inside &= in_pieces(v[u]);
    }
    if (inside == 0xffff) {
      for (int u = 0; u < 4; ++u) v[u] = gelu_in_pieces(v[u]);
    } else {
      for (int u = 0; u < 4; ++u) v[u] = gelu(v[u]);
    }
  };
  apply<4>(n, y, group, [&](int64_t i) { return gelu_fast(load_prefetching(x + i)); },
           [&](int64_t i, int64_t count) { return gelu_fast(load_padded(x, i, count)); });
}
#else
void gelu(int64_t n, const float* x, float* y) { map(n, x, y, [](vec v) { return gelu(v); }); }
#endif

void gelu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  map2(n, grad_y, x, grad_x, [](vec g, vec v) { return g * gelu_slope(v); });
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
