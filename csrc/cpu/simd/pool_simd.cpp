// 2x2 stride-2 max pooling rows with GCC vector extensions: a window's four taps come from two
// vectors per input row, split into even and odd columns by a two-source shuffle (vpermt2ps on
// AVX-512), so kWidth windows are decided with three compare-selects.
#include "cpu/simd/pool_simd.h"

#include <algorithm>
#include <cstring>

#include "cpu/simd/stream.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

typedef int ivec __attribute__((vector_size(kWidth * sizeof(int))));
typedef int64_t lvec __attribute__((vector_size(kWidth * sizeof(int64_t))));
typedef int64_t lvec_unaligned __attribute__((vector_size(kWidth * sizeof(int64_t)), aligned(alignof(int64_t))));

ivec iota() {
  ivec v = {};
  for (int k = 0; k < kWidth; ++k) v[k] = k;
  return v;
}
const ivec kLane = iota();

// Even and odd columns of the 2 kWidth floats p[0:2 kWidth].
struct Columns {
  vec even, odd;
};

Columns split(const float* p) {
  const vec a = load(p), b = load(p + kWidth);
  return {__builtin_shuffle(a, b, 2 * kLane), __builtin_shuffle(a, b, 2 * kLane + 1)};
}

// kWidth windows: the max and which tap holds it (0..3 in window order). A tap replaces the
// running max when greater or NaN, as in max_pool_row.
struct Argmax {
  vec best;
  ivec tap;
};

Argmax argmax(const float* top, const float* bottom) {
  const Columns t = split(top), b = split(bottom);
  Argmax m = {t.even, ivec{}};
  const vec taps[3] = {t.odd, b.even, b.odd};
  for (int k = 0; k < 3; ++k) {
    const ivec take = (taps[k] > m.best) | (taps[k] != taps[k]);
    m.best = take ? taps[k] : m.best;
    m.tap = take ? ivec{} + (k + 1) : m.tap;
  }
  return m;
}

// The plane offsets of tap `tap` of windows ow0 .. ow0 + kWidth - 1, in int32 (the plane has
// fewer than 2^31 elements) so that they stay native vectors.
ivec offsets(ivec tap, int64_t first, int64_t ow0, int64_t in_w) {
  return int(first + 2 * ow0) + 2 * kLane + (tap >> 1) * int(in_w) + (tap & 1);
}

// Which tap of windows ow0 .. ow0 + kWidth - 1 the offsets at[0:kWidth] name, -1 where none.
ivec tap_of(const int64_t* at, int64_t first, int64_t ow0, int64_t in_w) {
  const ivec relative = __builtin_convertvector(*reinterpret_cast<const lvec_unaligned*>(at), ivec) -
                        offsets(ivec{}, first, ow0, in_w);
  ivec tap = ivec{} - 1;
  for (int k = 0; k < 4; ++k) tap = relative == (k >> 1) * int(in_w) + (k & 1) ? ivec{} + k : tap;
  return tap;
}

// grad_top[0:2 kWidth], grad_bottom[0:2 kWidth] = grad at tap `tap` of each window, 0 elsewhere:
// the even and odd columns of each row interleaved back.
template <bool kStream>
void spread(vec grad, ivec tap, float* grad_top, float* grad_bottom) {
  const ivec low = (kLane >> 1) + (kLane & 1) * kWidth, high = low + kWidth / 2;
  vec at[4];
  for (int k = 0; k < 4; ++k) at[k] = tap == k ? grad : vec{};
  const auto put = [](float* p, vec v) { kStream ? stream(p, v) : store(p, v); };
  put(grad_top, __builtin_shuffle(at[0], at[1], low));
  put(grad_top + kWidth, __builtin_shuffle(at[0], at[1], high));
  put(grad_bottom, __builtin_shuffle(at[2], at[3], low));
  put(grad_bottom + kWidth, __builtin_shuffle(at[2], at[3], high));
}

// Runs block(ow0, top, bottom, grad_top, grad_bottom, count) on kWidth windows at a time. Blocks
// are idempotent, so a partial last block is the full block ending at out_w, overlapping the one
// before; only a row narrower than kWidth goes through zero-padded copies of its rows.
template <class Block>
void for_each_block(int64_t out_w, const float* top, const float* bottom, float* grad_top, float* grad_bottom,
                    Block&& block) {
  if (out_w >= kWidth) {
    for (int64_t ow = 0;; ow += kWidth) {
      ow = std::min(ow, out_w - kWidth);
      block(ow, top + 2 * ow, bottom + 2 * ow, grad_top ? grad_top + 2 * ow : nullptr,
            grad_bottom ? grad_bottom + 2 * ow : nullptr, int64_t(kWidth));
      if (ow + kWidth == out_w) return;
    }
  }
  float rows[4][2 * kWidth] = {};
  std::memcpy(rows[0], top, 2 * out_w * sizeof(float));
  std::memcpy(rows[1], bottom, 2 * out_w * sizeof(float));
  block(0, rows[0], rows[1], rows[2], rows[3], out_w);
  if (grad_top) {
    std::memcpy(grad_top, rows[2], 2 * out_w * sizeof(float));
    std::memcpy(grad_bottom, rows[3], 2 * out_w * sizeof(float));
  }
}

// Output row oh of a plane reads input rows 2 oh (top) and 2 oh + 1 (bottom).
void max_2x2(const Pool2dShape& s, const float* input, float* output, int64_t* at) {
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t first = 2 * oh * s.in_w;
    float* out = output + oh * s.out_w;
    int64_t* row_at = at ? at + oh * s.out_w : nullptr;
    for_each_block(s.out_w, input + first, input + first + s.in_w, nullptr, nullptr,
                   [&](int64_t ow, const float* t, const float* b, float*, float*, int64_t count) {
                     const Argmax m = argmax(t, b);
                     const lvec where = __builtin_convertvector(offsets(m.tap, first, ow, s.in_w), lvec);
                     if (count == kWidth) {
                       store(out + ow, m.best);
                       if (row_at) *reinterpret_cast<lvec_unaligned*>(row_at + ow) = where;
                     } else {
                       std::memcpy(out + ow, &m.best, count * sizeof(float));
                       if (row_at) std::memcpy(row_at + ow, &where, count * sizeof(int64_t));
                     }
                   });
  }
}

// Each input row pair is written whole from its output row (no zeroing pass, no scatter), with
// streaming stores where a block's lines are aligned: grad_input is 4x the size of grad_output
// and nothing reads it back soon. The odd last column or row no window covers is zeroed.
bool max_2x2_backward(const Pool2dShape& s, const float* grad_output, const int64_t* at, const float* input,
                      float* grad_input) {
  const auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % sizeof(vec) == 0; };
  ivec stray = {};
  for (int64_t oh = 0; oh < s.out_h; ++oh) {
    const int64_t first = 2 * oh * s.in_w;
    const float* grad = grad_output + oh * s.out_w;
    const int64_t* row_at = at ? at + oh * s.out_w : nullptr;
    float* grad_top = grad_input + first;
    for_each_block(s.out_w, input + first, input + first + s.in_w, grad_top, grad_top + s.in_w,
                   [&](int64_t ow, const float* t, const float* b, float* gt, float* gb, int64_t count) {
                     vec g = {};
                     int64_t window_at[kWidth] = {};
                     const int64_t* a = row_at ? row_at + ow : nullptr;
                     if (count == kWidth) {
                       g = load(grad + ow);
                     } else {
                       std::memcpy(&g, grad + ow, count * sizeof(float));
                       if (a) a = static_cast<const int64_t*>(std::memcpy(window_at, a, count * sizeof(int64_t)));
                     }
                     const ivec tap = a ? tap_of(a, first, ow, s.in_w) : argmax(t, b).tap;
                     stray |= (tap < 0) & (kLane < int(count));
                     if (count == kWidth && aligned(gt) && aligned(gb))
                       spread<true>(g, tap, gt, gb);
                     else
                       spread<false>(g, tap, gt, gb);
                   });
    for (float* row : {grad_top, grad_top + s.in_w}) std::fill(row + 2 * s.out_w, row + s.in_w, 0.0f);
  }
  std::fill(grad_input + 2 * s.out_h * s.in_w, grad_input + s.in_h * s.in_w, 0.0f);
  stream_fence();
  for (int k = 0; k < kWidth; ++k)
    if (stray[k]) return true;
  return false;
}

}  // namespace

extern const PoolKernels pool_kernels = {kWidth, max_2x2, max_2x2_backward};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
