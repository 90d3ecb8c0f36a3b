// Direct convolution over few taps with GCC vector extensions (see conv2d_simd.h): one vector
// of output columns at a time, many output channels (forward) or channel x tap pairs (grad
// weight) in registers, so each input vector loaded feeds many FMAs.
#include <algorithm>
#include <cstdint>
#include <immintrin.h>

#include "cpu/simd/conv2d_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

// direct_forward keeps kForwardChannels x kForwardVectors accumulators. Each FMA takes its weight
// as a broadcast load, so 16 channels x 1 vector made 17 loads per 16 FMAs, more than the two
// loads a cycle that feed two FMAs; 8 x 3 makes 11 per 24 (the Winograd products of 32 -> 64
// channels on 26x26 ran at half the FMA peak).
constexpr int kForwardChannels = 8;
#if defined(__AVX512F__)
constexpr int kForwardVectors = 3;  // 24 accumulators + 3 inputs of 32 zmm
constexpr int kWeightChannels = 8;  // 8 x 3 accumulators + 3 inputs + 1 gradient = 28 of 32 zmm
constexpr int kDataTaps = 9;        // 9 x 2 accumulators + 2 gradients of 32 zmm
#else
constexpr int kForwardVectors = 1;  // 8 accumulators + 1 input of 16 ymm/xmm
constexpr int kWeightChannels = 4;  // 4 x 3 accumulators + 3 inputs + 1 gradient = 16 of 16
constexpr int kDataTaps = 6;        // 6 x 2 accumulators + 2 gradients of 16
#endif
constexpr int kWeightTaps = 3;

typedef int32_t ivec __attribute__((vector_size(kWidth * sizeof(int32_t))));

// Stores lanes [0, count) of v. A memcpy of a variable size here becomes `rep movs`, whose ~30
// cycles of startup took a quarter of a first layer's forward (26-wide rows: every second
// vector is partial).
void store_first(float* p, vec v, int64_t count) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1), v);
#elif defined(__AVX2__)
  ivec lane;
  for (int i = 0; i < kWidth; ++i) lane[i] = i;
  _mm256_maskstore_ps(p, reinterpret_cast<__m256i>(lane < static_cast<int32_t>(count)), v);
#else
  for (int64_t i = 0; i < count; ++i) p[i] = v[i];
#endif
}

// Lanes [0, count) from p, zero in the others; nothing past them is read.
vec load_first(const float* p, int64_t count) {
#if defined(__AVX512F__)
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), p);
#elif defined(__AVX2__)
  ivec lane;
  for (int i = 0; i < kWidth; ++i) lane[i] = i;
  return _mm256_maskload_ps(p, reinterpret_cast<__m256i>(lane < static_cast<int32_t>(count)));
#else
  if (count == kWidth) return load(p);
  vec v{};
  for (int64_t i = 0; i < count; ++i) v[i] = p[i];
  return v;
#endif
}

// Lanes [0, cols) of v, zero in the others.
vec first_lanes(vec v, int64_t cols) {
  ivec lane;
  for (int i = 0; i < kWidth; ++i) lane[i] = i;
  return lane < static_cast<int32_t>(cols) ? v : vec{};
}

// Outputs [0, cols) of a row from `vectors` vectors, cols > (vectors - 1) * kWidth.
template <int vectors>
void forward_vectors(const float* x, const int64_t* offsets, int64_t taps, const float* weight, const float* bias,
                     int64_t channels, float* y, int64_t out_plane, int64_t cols) {
  vec acc[vectors][kForwardChannels];
  // Unrolled like every loop over acc: one left rolled kept acc on the stack, and GCC copied all
  // 16-24 accumulators there and back around the stores (first layer forward 6.1 -> 4.2 us/image).
#pragma GCC unroll 8
  for (int v = 0; v < vectors; ++v)
    for (int o = 0; o < kForwardChannels; ++o) acc[v][o] = splat(bias[o]);
  for (int64_t r = 0; r < taps; ++r) {
    vec tap[vectors];
    for (int v = 0; v < vectors; ++v) tap[v] = load(x + offsets[r] + v * kWidth);
    const float* w = weight + r * kForwardChannels;
#pragma GCC unroll 8
    for (int o = 0; o < kForwardChannels; ++o)
      for (int v = 0; v < vectors; ++v) acc[v][o] += w[o] * tap[v];
  }
  // Constant indices into acc, or GCC keeps it in memory (see backward_blocks).
#pragma GCC unroll 8
  for (int o = 0; o < kForwardChannels; ++o)
    for (int v = 0; v < vectors; ++v)
      if (o < channels) store_first(y + o * out_plane + v * kWidth, acc[v][o], std::min<int64_t>(kWidth, cols - v * kWidth));
}

// Every block of channels for one group of output vectors before the next group: the group's
// input (64 taps x 3 vectors = 12 KB for a Winograd product) is read from L1 after the first
// block; block by block over whole rows it came from L2 each time, and the FMAs waited on it.
void direct_forward(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps,
                    const float* weight, const float* bias, int64_t channels, float* out, int64_t out_plane,
                    int64_t out_h, int64_t out_w) {
  for (int64_t oh = 0; oh < out_h; ++oh)
    for (int64_t ow = 0; ow < out_w; ow += kForwardVectors * kWidth) {
      const float* x = input + oh * row_stride + ow;
      const int64_t cols = std::min<int64_t>(kForwardVectors * kWidth, out_w - ow);
      for (int64_t o = 0; o < channels; o += kForwardChannels) {
        const float* w = weight + o * taps;
        float* y = out + o * out_plane + oh * out_w + ow;
        // As many vectors as the row has left, so that none reads more than a vector past it.
        if (cols > 2 * kWidth) {
          forward_vectors<3>(x, offsets, taps, w, bias + o, channels - o, y, out_plane, cols);
        } else if (cols > kWidth) {
          forward_vectors<2>(x, offsets, taps, w, bias + o, channels - o, y, out_plane, cols);
        } else {
          forward_vectors<1>(x, offsets, taps, w, bias + o, channels - o, y, out_plane, cols);
        }
      }
    }
}

// Brings `bytes` from `data` (null: nothing) into L2 a few lines per call over `calls` calls: the
// next image's grad while this one is computed (its 8 planes of 2.7 KB at a time are too short
// for the hardware prefetcher to run ahead of).
class Prefetcher {
 public:
  Prefetcher(const float* data, int64_t bytes, int64_t calls)
      : next_(reinterpret_cast<const char*>(data)), end_(next_ + (data ? bytes : 0)),
        step_(data ? (bytes / kLine + calls) / std::max<int64_t>(1, calls) * kLine : 0) {}

  void operator()() {
    for (const char* stop = std::min(end_, next_ + step_); next_ < stop; next_ += kLine) __builtin_prefetch(next_, 0, 2);
  }

 private:
  static constexpr int64_t kLine = 64;
  const char* next_;
  const char* end_;
  int64_t step_;
};

// Blocks of kWeightChannels channels x kWeightTaps taps; a partial block repeats its last
// channel/tap in the spare accumulators, which are then not stored. Channel-block outer: its
// grad planes (8 x 26 x 26 floats, 22 KB) stay in L1 through the passes over the taps.
void weight_gradient(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps, const float* grad,
                     int64_t channels, int64_t out_h, int64_t out_w, float* grad_weight_lanes, Prefetcher& prefetch) {
  const int64_t grad_plane = out_h * out_w;
  for (int64_t o0 = 0; o0 < channels; o0 += kWeightChannels) {
    const int64_t channel_count = std::min<int64_t>(kWeightChannels, channels - o0);
    int64_t grad_offset[kWeightChannels];
    for (int o = 0; o < kWeightChannels; ++o) grad_offset[o] = (o0 + std::min<int64_t>(o, channel_count - 1)) * grad_plane;
    for (int64_t r0 = 0; r0 < taps; r0 += kWeightTaps) {
      const int64_t tap_count = std::min<int64_t>(kWeightTaps, taps - r0);
      int64_t tap_offset[kWeightTaps];
      for (int i = 0; i < kWeightTaps; ++i) tap_offset[i] = offsets[r0 + std::min<int64_t>(i, tap_count - 1)];
      vec acc[kWeightChannels][kWeightTaps] = {};
      for (int64_t oh = 0; oh < out_h; ++oh)
        for (int64_t ow = 0; ow < out_w; ow += kWidth) {
          prefetch();
          const float* x = input + oh * row_stride + ow;
          const float* g = grad + oh * out_w + ow;
          vec tap[kWeightTaps];
          for (int i = 0; i < kWeightTaps; ++i) tap[i] = load(x + tap_offset[i]);
          const int64_t cols = std::min<int64_t>(kWidth, out_w - ow);
          // Past the row the input lanes are zeroed too: an inf there times a zero gradient is NaN.
          if (cols < kWidth)
            for (int i = 0; i < kWeightTaps; ++i) tap[i] = first_lanes(tap[i], cols);
          // One gradient vector live at a time: 24 accumulators + 3 taps + 1 of 32 registers.
#pragma GCC unroll 8
          for (int o = 0; o < kWeightChannels; ++o) {
            const vec grad_vec = load_first(g + grad_offset[o], cols);
            for (int i = 0; i < kWeightTaps; ++i) acc[o][i] += grad_vec * tap[i];
          }
        }
      // Added lane by lane, with constant indices: reducing 24 vectors across their lanes after each
      // block took 3x the FMA loop (26x26 planes), and indexing acc by the variable counts would keep it
      // in memory (GCC then stored every accumulator after every FMA).
#pragma GCC unroll 8
      for (int o = 0; o < kWeightChannels; ++o)
        for (int i = 0; i < kWeightTaps; ++i)
          if (o < channel_count && i < tap_count) {
            float* lanes = grad_weight_lanes + ((o0 + o) * taps + r0 + i) * kWidth;
            store(lanes, load(lanes) + acc[o][i]);
          }
    }
  }
}

// Taps [0, tap_count) of a block of kDataTaps for `vectors` vectors of output columns (cols of
// them inside the row) at grad + p: out[i * tap_stride] = sum over o of weight[o * weight_stride +
// i] * grad[o * grad_plane + p]. Every channel in one go, so each tap's sum is stored once.
template <int vectors>
void tap_vectors(const float* grad, int64_t grad_plane, int64_t channels, const float* weight, int64_t weight_stride,
                 int64_t tap_count, int64_t cols, float* out, int64_t tap_stride) {
  int64_t counts[vectors];
  for (int v = 0; v < vectors; ++v) counts[v] = std::min<int64_t>(kWidth, cols - v * kWidth);
  vec acc[kDataTaps][vectors];
#pragma GCC unroll 16
  for (int i = 0; i < kDataTaps; ++i)
    for (int v = 0; v < vectors; ++v) acc[i][v] = vec{};
  for (int64_t o = 0; o < channels; ++o) {
    vec g[vectors];
    for (int v = 0; v < vectors; ++v) g[v] = load_first(grad + o * grad_plane + v * kWidth, counts[v]);
    const float* w = weight + o * weight_stride;
#pragma GCC unroll 16
    for (int i = 0; i < kDataTaps; ++i)
      for (int v = 0; v < vectors; ++v) acc[i][v] += w[i] * g[v];
  }
#pragma GCC unroll 16
  for (int i = 0; i < kDataTaps; ++i)
    for (int v = 0; v < vectors; ++v)
      if (i < tap_count) store_first(out + i * tap_stride + v * kWidth, acc[i][v], counts[v]);
}

// Tap r's plane of sum over o of weight[o * taps + r] * grad[o], laid out as the padded input
// (tap_grad + r * tap_stride + plane + oh * row_stride + ow) for gather_taps.
void tap_gradients(const float* grad, int64_t channels, int64_t out_h, int64_t out_w, const float* weight,
                   int64_t weight_stride, int64_t taps, int64_t row_stride, int64_t plane, float* tap_grad,
                   Prefetcher& prefetch) {
  const int64_t grad_plane = out_h * out_w, tap_stride = 2 * plane + kWidth;
  for (int64_t r0 = 0; r0 < taps; r0 += kDataTaps)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ow += 2 * kWidth) {
        prefetch();
        const int64_t cols = std::min<int64_t>(2 * kWidth, out_w - ow), tap_count = std::min<int64_t>(kDataTaps, taps - r0);
        const float* g = grad + oh * out_w + ow;
        float* out = tap_grad + r0 * tap_stride + plane + oh * row_stride + ow;
        if (cols > kWidth) {
          tap_vectors<2>(g, grad_plane, channels, weight + r0, weight_stride, tap_count, cols, out, tap_stride);
        } else {
          tap_vectors<1>(g, grad_plane, channels, weight + r0, weight_stride, tap_count, cols, out, tap_stride);
        }
      }
}

// grad_input[c * plane + j] = sum over the taps r of channel c of their planes at j - (offsets[r] -
// c * plane): plain loads and one store per vector. Adding each tap's plane into grad_input in
// place instead (loads overlapping the stores of the tap before, one column apart, still in
// flight) took a fifth of the first layer's backward.
void gather_taps(const int64_t* offsets, int64_t taps, const float* tap_grad, int64_t plane, float* grad_input) {
  const int64_t tap_stride = 2 * plane + kWidth;
  for (int64_t first = 0; first < taps;) {
    const int64_t c = offsets[first] / plane;
    int64_t last = first + 1;
    while (last < taps && offsets[last] / plane == c) ++last;
    for (int64_t j = 0; j < plane; j += kWidth) {
      vec sum{};
      for (int64_t r = first; r < last; ++r) sum += load(tap_grad + r * tap_stride + plane + j - (offsets[r] - c * plane));
      store_first(grad_input + c * plane + j, sum, std::min<int64_t>(kWidth, plane - j));
    }
    first = last;
  }
}

// The weight gradient, then the input's from the same grad, now in L2: one pass over memory
// (5.5 MB in a first layer's 64x32x26x26), each with the registers its sums need. Done in one
// loop, the input gradient's sums took a broadcast weight per FMA and a read-modify-write per
// channel block (first layer, 16 images in L2: 9.9 vs 9.4 us per image; input gradient alone
// 7.3 vs 4.0).
void direct_backward(const float* input, int64_t row_stride, int64_t plane, const int64_t* offsets, int64_t taps,
                     const float* grad, const float* next_grad, int64_t channels, int64_t out_h, int64_t out_w,
                     const float* weight, float* grad_weight_lanes, float* grad_input, float* scratch) {
  const int64_t row_vectors = out_h * ((out_w + kWidth - 1) / kWidth);
  const int64_t steps = grad_weight_lanes ? (channels + kWeightChannels - 1) / kWeightChannels *
                                                ((taps + kWeightTaps - 1) / kWeightTaps) * row_vectors
                                          : (taps + kDataTaps - 1) / kDataTaps * row_vectors / 2;
  Prefetcher prefetch(next_grad, channels * out_h * out_w * int64_t(sizeof(float)), steps);
  Prefetcher none(nullptr, 0, 1);
  if (grad_weight_lanes)
    weight_gradient(input, row_stride, offsets, taps, grad, channels, out_h, out_w, grad_weight_lanes, prefetch);
  if (!grad_input) return;
  tap_gradients(grad, channels, out_h, out_w, weight, (taps + kDataTaps - 1) / kDataTaps * kDataTaps, taps, row_stride,
                plane, scratch, grad_weight_lanes ? none : prefetch);
  gather_taps(offsets, taps, scratch, plane, grad_input);
}

// A vector of columns k, k + stride, ... (stride <= 2) of a row w wide lies in the two vectors
// at base and base + kWidth (2 kWidth >= stride (kWidth - 1) + 1 columns), of which the first
// first_count and second_count columns are inside the row.
struct RowWindows {
  int64_t k, base, first_count, second_count;
};

RowWindows row_windows(int64_t k, int64_t w) {
  const int64_t base = std::clamp<int64_t>(k, 0, w);
  return {k, base, std::min<int64_t>(kWidth, w - base), std::clamp<int64_t>(w - base - kWidth, 0, kWidth)};
}

// Rows of 13 or 14 outputs, which the compiler's loops ran scalar: each vector of outputs is a
// shuffle of two masked loads, with the lanes that fall outside the row zeroed. Which lanes, and
// where they come from, is the same in every row, so it is worked out once per vector column.
void gather_rows(const float* src, int64_t w, int64_t src_row_stride, int64_t rows, int64_t first, int64_t stride,
                 int64_t count, float* dst, int64_t dst_row_stride) {
  if (stride > 2) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < count; ++i) {
        const int64_t k = first + i * stride;
        dst[r * dst_row_stride + i] = k >= 0 && k < w ? src[r * src_row_stride + k] : 0.0f;
      }
    return;
  }
  for (int64_t i = 0; i < count; i += kWidth) {
    const auto [k, base, first_count, second_count] = row_windows(first + i * stride, w);
    const int64_t outputs = std::min<int64_t>(kWidth, count - i);
    ivec from, inside;
    for (int l = 0; l < kWidth; ++l) {
      const int64_t column = k + l * stride;
      inside[l] = column >= 0 && column < w ? -1 : 0;
      from[l] = inside[l] ? static_cast<int32_t>(column - base) : 0;
    }
    const float* row = src + base;
    float* out = dst + i;
    for (int64_t r = 0; r < rows; ++r, row += src_row_stride, out += dst_row_stride) {
      const vec low = load_first(row, first_count);
      const vec high = second_count > 0 ? load_first(row + kWidth, second_count) : vec{};
      const vec v = __builtin_shuffle(low, high, from);
      store_first(out, inside ? v : vec{}, outputs);
    }
  }
}

// The adjoint of gather_rows: each vector of inputs is shuffled into the two windows of the row
// it lands in, which are loaded, added to and stored back.
void scatter_add_rows(const float* src, int64_t src_row_stride, int64_t rows, int64_t count, float* dst, int64_t w,
                      int64_t dst_row_stride, int64_t first, int64_t stride) {
  if (stride > 2) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < count; ++i) {
        const int64_t k = first + i * stride;
        if (k >= 0 && k < w) dst[r * dst_row_stride + k] += src[r * src_row_stride + i];
      }
    return;
  }
  for (int64_t i = 0; i < count; i += kWidth) {
    const auto [k, base, first_count, second_count] = row_windows(first + i * stride, w);
    const int64_t inputs = std::min<int64_t>(kWidth, count - i);
    // Window lane m (column base + m, or base + kWidth + m) takes input lane (column - k) / stride
    // when that is a whole lane, else lane kWidth: the zero vector's.
    ivec low_from, high_from;
    bool high_used = false;
    // (Stride 1 or 2 here, spelled out: a division by the variable stride took a third of the time.)
    const auto input_lane = [stride](int64_t offset) {
      const int64_t lane = stride == 1 ? offset : offset / 2;
      return (stride == 1 || offset % 2 == 0) && lane < kWidth ? static_cast<int32_t>(lane) : kWidth;
    };
    for (int m = 0; m < kWidth; ++m) {
      low_from[m] = input_lane(base + m - k);
      high_from[m] = input_lane(base + kWidth + m - k);
      high_used |= m < second_count && high_from[m] < kWidth;
    }
    const float* in = src + i;
    float* row = dst + base;
    for (int64_t r = 0; r < rows; ++r, in += src_row_stride, row += dst_row_stride) {
      const vec v = load_first(in, inputs);
      store_first(row, load_first(row, first_count) + __builtin_shuffle(v, vec{}, low_from), first_count);
      if (high_used)
        store_first(row + kWidth, load_first(row + kWidth, second_count) + __builtin_shuffle(v, vec{}, high_from),
                    second_count);
    }
  }
}

// x[xi] to dst + xi * xi_stride, xi < 16, for the transforms. The 16 arrays of a block live in
// L2 (0.7 MB for 64 channels of 13x13 tiles) and a store that misses L1 waits for its line, so the
// lines 3 ahead in each array, which the next tile rows write, are fetched first: 64 channels of
// 13x13 tiles, 46 -> 30 ns per vector of tiles. The pointer steps from array to array, opaque to
// the compiler, which otherwise keeps 16 pointers and spills them (60 -> 46 ns).
void store_transformed(const vec (&x)[16], float* dst, int64_t xi_stride) {
  constexpr int64_t kAhead = 48;
  for (int xi = 0; xi < 16; ++xi) {
    __builtin_prefetch(dst + kAhead, 1);
    store(dst, x[xi]);
    dst += xi_stride;
    asm("" : "+r"(dst));
  }
}

// Where the columns first + 2l + j (j < 4) of the tiles' lanes l come from in a row w wide: for j
// < 2 the window at first, for j >= 2 the one at first + 2 (a vector of tiles spans 2 kWidth + 2
// columns, one window 2 kWidth). window[j / 2] holds the two vectors' column counts, from[j] the
// lane of the window pair each tile lane takes, inside[j] whether its column is in the row.
struct TileColumns {
  RowWindows window[2];
  ivec from[4], inside[4];
};

TileColumns tile_columns(int64_t first, int64_t w) {
  TileColumns t;
  for (int j = 0; j < 4; ++j) {
    const RowWindows window = row_windows(first + j / 2 * 2, w);
    t.window[j / 2] = window;
    for (int l = 0; l < kWidth; ++l) {
      const int64_t column = first + 2 * l + j;
      t.inside[j][l] = column >= 0 && column < w ? -1 : 0;
      t.from[j][l] = t.inside[j][l] ? static_cast<int32_t>(column - window.base) : 0;
    }
  }
  return t;
}

// The four columns of the tiles in one row (zero past the row), from two masked loads per window.
void tile_row(const float* row, const TileColumns& t, vec (&d)[4]) {
  for (int half = 0; half < 2; ++half) {
    const RowWindows& window = t.window[half];
    const vec low = load_first(row + window.base, window.first_count);
    const vec high = window.second_count > 0 ? load_first(row + window.base + kWidth, window.second_count) : vec{};
    for (int j = 2 * half; j < 2 * half + 2; ++j) d[j] = t.inside[j] ? __builtin_shuffle(low, high, t.from[j]) : vec{};
  }
}

// V = B^T d B for the 4x4 input tiles d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], read from
// the image as it is: a tile row shares two rows with the next, so each row is loaded and shuffled
// once. (Splitting the padded image by column parity first, for plain loads, cost as much as the
// transform: 13% of 32 -> 64 channels on 26x26's backward-data, 8% of its forward and
// backward-weight.) The last vector of tiles goes first: its overrun into the next tile row is
// then overwritten by that row's first vector.
void winograd_input(const float* image, int64_t h, int64_t w, int64_t first_row, int64_t first_column,
                    int64_t channels, int64_t tile_rows, int64_t tiles_w, float* v, int64_t xi_stride, int64_t row) {
  for (int64_t tw = (tiles_w + kWidth - 1) / kWidth * kWidth - kWidth; tw >= 0; tw -= kWidth) {
    const TileColumns columns = tile_columns(first_column + 2 * tw, w);
    for (int64_t c = 0; c < channels; ++c) {
      const float* plane = image + c * h * w;
      const auto load_row = [&](int64_t y, vec (&d)[4]) {
        if (y >= 0 && y < h) {
          tile_row(plane + y * w, columns, d);
        } else {
          for (vec& x : d) x = vec{};
        }
      };
      vec d[4][4];
      load_row(first_row, d[0]);
      load_row(first_row + 1, d[1]);
      for (int64_t th = 0; th < tile_rows; ++th) {
        load_row(first_row + 2 * th + 2, d[2]);
        load_row(first_row + 2 * th + 3, d[3]);
        vec t[4][4];
        for (int j = 0; j < 4; ++j) {
          t[0][j] = d[0][j] - d[2][j];
          t[1][j] = d[1][j] + d[2][j];
          t[2][j] = d[2][j] - d[1][j];
          t[3][j] = d[1][j] - d[3][j];
        }
        vec x[16];
        for (int i = 0; i < 4; ++i) {
          x[4 * i + 0] = t[i][0] - t[i][2];
          x[4 * i + 1] = t[i][1] + t[i][2];
          x[4 * i + 2] = t[i][2] - t[i][1];
          x[4 * i + 3] = t[i][1] - t[i][3];
        }
        store_transformed(x, v + c * row + th * tiles_w + tw, xi_stride);
        for (int j = 0; j < 4; ++j) d[0][j] = d[2][j], d[1][j] = d[3][j];
      }
    }
  }
}

// Reads grad_output as it is: two masked loads and two shuffles give a row's even and odd
// columns (a parity split of it cost 6% of the 32 -> 64 channel 26x26 backward-weight).
void winograd_gradient(const float* grad, int64_t plane, int64_t rows, int64_t out_w, int64_t channels,
                       int64_t tile_rows, int64_t tiles_w, float* q, int64_t xi_stride, int64_t row) {
  ivec even_lanes, odd_lanes;
  for (int l = 0; l < kWidth; ++l) even_lanes[l] = 2 * l, odd_lanes[l] = 2 * l + 1;
  for (int64_t o = 0; o < channels; ++o)
    for (int64_t th = 0; th < tile_rows; ++th)
      for (int64_t tw = 0; tw < tiles_w; tw += kWidth) {
        vec g[2][2];  // rows 2th and 2th + 1 (zero past the plane), even and odd columns
        for (int i = 0; i < 2; ++i) {
          vec low{}, high{};
          if (2 * th + i < rows) {
            const RowWindows window = row_windows(2 * tw, out_w);
            const float* src = grad + o * plane + (2 * th + i) * out_w + window.base;
            low = load_first(src, window.first_count);
            high = load_first(src + kWidth, window.second_count);
          }
          g[i][0] = __builtin_shuffle(low, high, even_lanes);
          g[i][1] = __builtin_shuffle(low, high, odd_lanes);
        }
        vec t[4][2];
        for (int j = 0; j < 2; ++j) {
          t[0][j] = g[0][j];
          t[1][j] = g[0][j] + g[1][j];
          t[2][j] = g[0][j] - g[1][j];
          t[3][j] = -g[1][j];
        }
        vec x[16];
        for (int i = 0; i < 4; ++i) {
          x[4 * i + 0] = t[i][0];
          x[4 * i + 1] = t[i][0] + t[i][1];
          x[4 * i + 2] = t[i][0] - t[i][1];
          x[4 * i + 3] = -t[i][1];
        }
        store_transformed(x, q + o * row + th * tiles_w + tw, xi_stride);
      }
}

// Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1]; the two output columns of a tile are interleaved
// into two vectors of 2 * kWidth consecutive outputs.
void winograd_output(const float* m, int64_t xi_stride, int64_t row, int64_t channels, int64_t tile_rows,
                     int64_t tiles_w, const float* bias, float* out, int64_t out_plane, int64_t out_h,
                     int64_t out_w) {
  ivec low, high;
  for (int l = 0; l < kWidth; ++l) {
    low[l] = l / 2 + (l % 2) * kWidth;
    high[l] = (kWidth + l) / 2 + (l % 2) * kWidth;
  }
  for (int64_t o = 0; o < channels; ++o) {
    const vec b = splat(bias ? bias[o] : 0.0f);
    for (int64_t th = 0; th < tile_rows; ++th)
      for (int64_t tw = 0; tw < tiles_w; tw += kWidth) {
        const float* src = m + o * row + th * tiles_w + tw;
        vec u[2][4];
        for (int j = 0; j < 4; ++j) {
          const vec m0 = load(src + j * xi_stride), m1 = load(src + (4 + j) * xi_stride);
          const vec m2 = load(src + (8 + j) * xi_stride), m3 = load(src + (12 + j) * xi_stride);
          u[0][j] = m0 + m1 + m2;
          u[1][j] = m1 - m2 - m3;
        }
        for (int i = 0; i < 2 && 2 * th + i < out_h; ++i) {
          const vec even = b + u[i][0] + u[i][1] + u[i][2], odd = b + u[i][1] - u[i][2] - u[i][3];
          const vec y[2] = {__builtin_shuffle(even, odd, low), __builtin_shuffle(even, odd, high)};
          float* dst = out + o * out_plane + (2 * th + i) * out_w + 2 * tw;
          const int64_t cols = std::min<int64_t>(2 * kWidth, out_w - 2 * tw);
          store_first(dst, y[0], std::min<int64_t>(kWidth, cols));
          if (cols > kWidth) store_first(dst + kWidth, y[1], cols - kWidth);
        }
      }
  }
}

}  // namespace

extern const Conv2dKernels conv2d_kernels = {
    kWidth,      kForwardChannels, kDataTaps, direct_forward, direct_backward, gather_rows, scatter_add_rows, winograd_input,
    winograd_gradient, winograd_output};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
