// 2x2 stride-2 max pooling rows with GCC vector extensions: a window's four taps come from two
// vectors per input row, split into even and odd columns by a two-source shuffle (vpermt2ps on
// AVX-512), so W windows are decided with three compare-selects. Rows narrower than the ISA's
// vector take half-width ones: the demo's 12-window rows (64x64x24x24) staged through padded
// 16-wide copies took 2.4 ms a pass, 1 thread, against 0.8 ms in 8-wide vectors (AVX2's).
#include "cpu/simd/pool_simd.h"

#include <algorithm>
#include <cstring>

#include "cpu/simd/stream.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

// Vectors of W lanes. (Declared in a class template of their own: GCC 12 drops a vector_size
// that depends on W from typedefs inside the template that uses them.)
template <int W>
struct Lanes {
  typedef float fvec __attribute__((vector_size(W * sizeof(float))));
  typedef float fvec_unaligned __attribute__((vector_size(W * sizeof(float)), aligned(alignof(float))));
  typedef int ivec __attribute__((vector_size(W * sizeof(int))));
  typedef int64_t lvec __attribute__((vector_size(W * sizeof(int64_t))));
  typedef int64_t lvec_unaligned __attribute__((vector_size(W * sizeof(int64_t)), aligned(alignof(int64_t))));
};

// The row kernels for W windows per vector.
template <int W>
struct Rows {
  using fvec = typename Lanes<W>::fvec;
  using fvec_unaligned = typename Lanes<W>::fvec_unaligned;
  using ivec = typename Lanes<W>::ivec;
  using lvec = typename Lanes<W>::lvec;
  using lvec_unaligned = typename Lanes<W>::lvec_unaligned;

  static fvec load(const float* p) { return *reinterpret_cast<const fvec_unaligned*>(p); }

  // *p = v, streamed (see stream.h) only from full-width vectors: streaming the half-width rows'
  // partial lines doubled the demo's backward (64x64x24x24, 1 thread, from memory: 2.2 -> 4.4 ms).
  template <bool kStream>
  static void put(float* p, fvec v) {
    if constexpr (kStream && W == kWidth)
      stream(p, v);
    else
      *reinterpret_cast<fvec_unaligned*>(p) = v;
  }

  static ivec iota() {
    ivec v = {};
    for (int k = 0; k < W; ++k) v[k] = k;
    return v;
  }
  static inline const ivec kLane = iota();

  // Even and odd columns of the 2 W floats p[0:2 W].
  struct Columns {
    fvec even, odd;
  };

  // Inputs are prefetched kPrefetchAhead ahead, as the activations' are: the demo's 64x64x24x24
  // read from memory (caches flushed first), 1 thread: forward with relu 1.96 -> 1.0-1.2 ms; 256
  // and 2048 floats ahead measured alike.
  static Columns split(const float* p) {
    __builtin_prefetch(p + kPrefetchAhead);
    const fvec a = load(p), b = load(p + W);
    return {__builtin_shuffle(a, b, 2 * kLane), __builtin_shuffle(a, b, 2 * kLane + 1)};
  }

  // W windows: the max and which tap holds it (0..3 in window order). A tap replaces the
  // running max when greater or NaN, as in max_pool_row. With relu, the max is relu's of it
  // and the tap -1 where the max is not positive (relu's gradient there is 0).
  struct Argmax {
    fvec best;
    ivec tap;
  };

  static Argmax argmax(const float* top, const float* bottom, bool relu) {
    const Columns t = split(top), b = split(bottom);
    Argmax m = {t.even, ivec{}};
    const fvec taps[3] = {t.odd, b.even, b.odd};
    for (int k = 0; k < 3; ++k) {
      const ivec take = (taps[k] > m.best) | (taps[k] != taps[k]);
      m.best = take ? taps[k] : m.best;
      m.tap = take ? ivec{} + (k + 1) : m.tap;
    }
    if (relu) {
      m.tap = m.best > 0.0f ? m.tap : ivec{} - 1;
      m.best = m.best < 0.0f ? fvec{} : m.best;  // NaN passes, as relu's kernel lets it
    }
    return m;
  }

  // The plane offsets of tap `tap` of windows ow0 .. ow0 + W - 1 (-1 where tap is -1), in int32
  // (the plane has fewer than 2^31 elements) so that they stay native vectors.
  static ivec offsets(ivec tap, int64_t first, int64_t ow0, int64_t in_w) {
    const ivec at = int(first + 2 * ow0) + 2 * kLane + (tap >> 1) * int(in_w) + (tap & 1);
    return tap < 0 ? tap : at;
  }

  // Which tap of windows ow0 .. ow0 + W - 1 the offsets at[0:W] name: -1 where at is -1 (no
  // gradient), -2 where at lies outside its window.
  static ivec tap_of(const int64_t* at, int64_t first, int64_t ow0, int64_t in_w) {
    const ivec given = __builtin_convertvector(*reinterpret_cast<const lvec_unaligned*>(at), ivec);
    const ivec relative = given - offsets(ivec{}, first, ow0, in_w);
    ivec tap = given == -1 ? ivec{} - 1 : ivec{} - 2;
    for (int k = 0; k < 4; ++k) tap = relative == (k >> 1) * int(in_w) + (k & 1) ? ivec{} + k : tap;
    return tap;
  }

  // grad_top[0:2 W], grad_bottom[0:2 W] = grad at tap `tap` of each window, 0 elsewhere: the
  // even and odd columns of each row interleaved back.
  template <bool kStream>
  static void spread(fvec grad, ivec tap, float* grad_top, float* grad_bottom) {
    const ivec low = (kLane >> 1) + (kLane & 1) * W, high = low + W / 2;
    fvec at[4];
    for (int k = 0; k < 4; ++k) at[k] = tap == k ? grad : fvec{};
    put<kStream>(grad_top, __builtin_shuffle(at[0], at[1], low));
    put<kStream>(grad_top + W, __builtin_shuffle(at[0], at[1], high));
    put<kStream>(grad_bottom, __builtin_shuffle(at[2], at[3], low));
    put<kStream>(grad_bottom + W, __builtin_shuffle(at[2], at[3], high));
  }

  // Runs block(ow0, top, bottom, grad_top, grad_bottom, count) on W windows at a time. Blocks
  // are idempotent, so a partial last block is the full block ending at out_w, overlapping the
  // one before; only a row narrower than W goes through zero-padded copies of its rows.
  template <class Block>
  static void for_each_block(int64_t out_w, const float* top, const float* bottom, float* grad_top,
                             float* grad_bottom, Block&& block) {
    if (out_w >= W) {
      for (int64_t ow = 0;; ow += W) {
        ow = std::min(ow, out_w - W);
        block(ow, top + 2 * ow, bottom + 2 * ow, grad_top ? grad_top + 2 * ow : nullptr,
              grad_bottom ? grad_bottom + 2 * ow : nullptr, int64_t(W));
        if (ow + W == out_w) return;
      }
    }
    float rows[4][2 * W] = {};
    std::memcpy(rows[0], top, 2 * out_w * sizeof(float));
    std::memcpy(rows[1], bottom, 2 * out_w * sizeof(float));
    block(0, rows[0], rows[1], rows[2], rows[3], out_w);
    if (grad_top) {
      std::memcpy(grad_top, rows[2], 2 * out_w * sizeof(float));
      std::memcpy(grad_bottom, rows[3], 2 * out_w * sizeof(float));
    }
  }

  // Output row oh of a plane reads input rows 2 oh (top) and 2 oh + 1 (bottom).
  static void max_2x2(const Pool2dShape& s, const float* input, float* output, int64_t* at, bool relu) {
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t first = 2 * oh * s.in_w;
      float* out = output + oh * s.out_w;
      int64_t* row_at = at ? at + oh * s.out_w : nullptr;
      for_each_block(s.out_w, input + first, input + first + s.in_w, nullptr, nullptr,
                     [&](int64_t ow, const float* t, const float* b, float*, float*, int64_t count) {
                       const Argmax m = argmax(t, b, relu);
                       const lvec where = __builtin_convertvector(offsets(m.tap, first, ow, s.in_w), lvec);
                       if (count == W) {
                         put<false>(out + ow, m.best);
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
  static bool max_2x2_backward(const Pool2dShape& s, const float* grad_output, const int64_t* at, const float* input,
                               float* grad_input, bool relu) {
    const auto aligned = [](const float* p) { return reinterpret_cast<uintptr_t>(p) % sizeof(fvec) == 0; };
    ivec stray = {};
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const int64_t first = 2 * oh * s.in_w;
      const float* grad = grad_output + oh * s.out_w;
      const int64_t* row_at = at ? at + oh * s.out_w : nullptr;
      float* grad_top = grad_input + first;
      for_each_block(s.out_w, input + first, input + first + s.in_w, grad_top, grad_top + s.in_w,
                     [&](int64_t ow, const float* t, const float* b, float* gt, float* gb, int64_t count) {
                       fvec g = {};
                       int64_t window_at[W] = {};
                       const int64_t* a = row_at ? row_at + ow : nullptr;
                       if (count == W) {
                         g = load(grad + ow);
                       } else {
                         std::memcpy(&g, grad + ow, count * sizeof(float));
                         if (a) a = static_cast<const int64_t*>(std::memcpy(window_at, a, count * sizeof(int64_t)));
                       }
                       const ivec tap = a ? tap_of(a, first, ow, s.in_w) : argmax(t, b, relu).tap;
                       stray |= (tap == -2) & (kLane < int(count));
                       if (count == W && aligned(gt) && aligned(gb))
                         spread<true>(g, tap, gt, gb);
                       else
                         spread<false>(g, tap, gt, gb);
                     });
      for (float* row : {grad_top, grad_top + s.in_w}) std::fill(row + 2 * s.out_w, row + s.in_w, 0.0f);
    }
    std::fill(grad_input + 2 * s.out_h * s.in_w, grad_input + s.in_h * s.in_w, 0.0f);
    stream_fence();
    for (int k = 0; k < W; ++k)
      if (stray[k]) return true;
    return false;
  }
};

// Half-width vectors serve rows narrower than a full one, on ISAs whose half is still 4 wide.
constexpr int kHalf = kWidth >= 8 ? kWidth / 2 : kWidth;

void max_2x2(const Pool2dShape& s, const float* input, float* output, int64_t* at, bool relu) {
  if (s.out_w >= kWidth) return Rows<kWidth>::max_2x2(s, input, output, at, relu);
  Rows<kHalf>::max_2x2(s, input, output, at, relu);
}

bool max_2x2_backward(const Pool2dShape& s, const float* grad_output, const int64_t* at, const float* input,
                      float* grad_input, bool relu) {
  if (s.out_w >= kWidth) return Rows<kWidth>::max_2x2_backward(s, grad_output, at, input, grad_input, relu);
  return Rows<kHalf>::max_2x2_backward(s, grad_output, at, input, grad_input, relu);
}

}  // namespace

extern const PoolKernels pool_kernels = {kHalf, max_2x2, max_2x2_backward};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
