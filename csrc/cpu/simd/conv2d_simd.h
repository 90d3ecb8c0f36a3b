// Direct convolution kernels for layers with few taps (C_in * KH * KW, e.g. a first layer with
// one input channel), compiled once per ISA (see CMakeLists.txt). With so short a reduction a
// GEMM spends its time packing and storing C tiles; these keep the output in registers instead.
//
// Both work on one image whose input planes were copied into a zero-padded buffer, so every tap
// is a fixed offset from the output position: tap r of output (oh, ow) reads
// input[offsets[r] + oh * row_stride + ow]. The vectors of a row's last partial chunk read up
// to `width` - 1 floats past that row's last output (into the next row or the buffer's slack);
// those lanes are dropped.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

struct Conv2dKernels {
  int64_t width;             // floats per vector
  int64_t forward_channels;  // output channels per direct_forward call
  // out[o * out_h * out_w + oh * out_w + ow] = bias[o] + sum_r weight[r * forward_channels + o] * tap r,
  // for o < channels <= forward_channels; weight and bias are zero-padded to forward_channels.
  void (*direct_forward)(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps,
                         const float* weight, const float* bias, int64_t channels, float* out, int64_t out_h,
                         int64_t out_w);
  // grad_weight[o * taps + r] += sum over (oh, ow) of grad[o * out_h * grad_row_stride + oh * grad_row_stride + ow]
  // * tap r, for every o < channels. grad rows are whole vectors (grad_row_stride a multiple of
  // width), zero past out_w.
  void (*direct_weight)(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps,
                        const float* grad, int64_t grad_row_stride, int64_t channels, int64_t out_h, int64_t out_w,
                        float* grad_weight);
};

}  // namespace fastnn::cpu
