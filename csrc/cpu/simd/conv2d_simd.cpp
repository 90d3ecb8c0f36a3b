// Direct convolution over few taps with GCC vector extensions (see conv2d_simd.h): one vector
// of output columns at a time, many output channels (forward) or channel x tap pairs (grad
// weight) in registers, so each input vector loaded feeds many FMAs.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/simd/conv2d_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

#if defined(__AVX512F__)
constexpr int kForwardChannels = 16;  // 16 accumulators + 1 input vector of 32 zmm
constexpr int kWeightChannels = 8;    // 8 x 3 accumulators + 3 inputs + 1 gradient = 28 of 32 zmm
#else
constexpr int kForwardChannels = 8;  // 8 accumulators + 1 input of 16 ymm/xmm
constexpr int kWeightChannels = 4;   // 4 x 3 accumulators + 3 inputs + 1 gradient = 16 of 16
#endif
constexpr int kWeightTaps = 3;

typedef int32_t ivec __attribute__((vector_size(kWidth * sizeof(int32_t))));

// Lanes [0, cols) of v, zero in the others.
vec first_lanes(vec v, int64_t cols) {
  ivec lane;
  for (int i = 0; i < kWidth; ++i) lane[i] = i;
  return lane < static_cast<int32_t>(cols) ? v : vec{};
}

float lane_sum(vec v) {
  float sum = 0.0f;
  for (int i = 0; i < kWidth; ++i) sum += v[i];
  return sum;
}

void direct_forward(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps,
                    const float* weight, const float* bias, int64_t channels, float* out, int64_t out_h,
                    int64_t out_w) {
  const int64_t plane = out_h * out_w;
  for (int64_t oh = 0; oh < out_h; ++oh)
    for (int64_t ow = 0; ow < out_w; ow += kWidth) {
      const float* x = input + oh * row_stride + ow;
      vec acc[kForwardChannels];
      for (int o = 0; o < kForwardChannels; ++o) acc[o] = splat(bias[o]);
      for (int64_t r = 0; r < taps; ++r) {
        const vec tap = load(x + offsets[r]);
        const float* w = weight + r * kForwardChannels;
#pragma GCC unroll 16
        for (int o = 0; o < kForwardChannels; ++o) acc[o] += w[o] * tap;
      }
      const int64_t cols = std::min<int64_t>(kWidth, out_w - ow);
      float* y = out + oh * out_w + ow;
      for (int64_t o = 0; o < std::min<int64_t>(channels, kForwardChannels); ++o) {
        if (cols == kWidth) {
          store(y + o * plane, acc[o]);
        } else {
          std::memcpy(y + o * plane, &acc[o], cols * sizeof(float));
        }
      }
    }
}

// Blocks of kWeightChannels channels x kWeightTaps taps; a partial block repeats its last
// channel/tap in the spare accumulators, which are then not stored.
void direct_weight(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps, const float* grad,
                   int64_t grad_row_stride, int64_t channels, int64_t out_h, int64_t out_w, float* grad_weight) {
  const int64_t grad_plane = out_h * grad_row_stride;
  for (int64_t r0 = 0; r0 < taps; r0 += kWeightTaps) {
    const int64_t tap_count = std::min<int64_t>(kWeightTaps, taps - r0);
    int64_t tap_offset[kWeightTaps];
    for (int i = 0; i < kWeightTaps; ++i) tap_offset[i] = offsets[r0 + std::min<int64_t>(i, tap_count - 1)];
    for (int64_t o0 = 0; o0 < channels; o0 += kWeightChannels) {
      const int64_t channel_count = std::min<int64_t>(kWeightChannels, channels - o0);
      int64_t grad_offset[kWeightChannels];
      for (int o = 0; o < kWeightChannels; ++o)
        grad_offset[o] = (o0 + std::min<int64_t>(o, channel_count - 1)) * grad_plane;
      vec acc[kWeightChannels][kWeightTaps] = {};
      for (int64_t oh = 0; oh < out_h; ++oh)
        for (int64_t ow = 0; ow < out_w; ow += kWidth) {
          const float* x = input + oh * row_stride + ow;
          vec tap[kWeightTaps];
          for (int i = 0; i < kWeightTaps; ++i) tap[i] = load(x + tap_offset[i]);
          if (out_w - ow < kWidth) {
            // grad is zero past the row; zero the inputs there too, or an inf in the next row
            // would make inf * 0 = NaN.
            for (int i = 0; i < kWeightTaps; ++i) tap[i] = first_lanes(tap[i], out_w - ow);
          }
          const float* g = grad + oh * grad_row_stride + ow;
#pragma GCC unroll 8
          for (int o = 0; o < kWeightChannels; ++o) {
            const vec grad_vec = load(g + grad_offset[o]);
            for (int i = 0; i < kWeightTaps; ++i) acc[o][i] += grad_vec * tap[i];
          }
        }
      for (int64_t o = 0; o < channel_count; ++o)
        for (int64_t i = 0; i < tap_count; ++i) grad_weight[(o0 + o) * taps + r0 + i] += lane_sum(acc[o][i]);
    }
  }
}

}  // namespace

extern const Conv2dKernels conv2d_kernels = {kWidth, kForwardChannels, direct_forward, direct_weight};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
