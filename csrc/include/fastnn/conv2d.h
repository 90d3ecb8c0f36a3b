// 2-D convolution over NCHW float32 tensors, forward and backward. Arrays are contiguous.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// The sizes of one convolution. pad_h/pad_w are the zero rows/columns before the input; the
// zeros after it are implied by out_h/out_w, so asymmetric padding (padding='same' with an even
// kernel puts the extra zero at the end, as torch does) needs nothing more.
struct Conv2dShape {
  int64_t batch, in_channels, in_h, in_w;
  int64_t out_channels, kernel_h, kernel_w;  // weight is (out_channels, in_channels / groups, kernel_h, kernel_w)
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t groups;
  int64_t out_h, out_w;
};

// output[N, out_channels, out_h, out_w] = conv2d(input, weight) + bias (bias may be null).
void conv2d(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output);

// Gradients of conv2d; any of grad_input, grad_weight, grad_bias may be null to skip it.
void conv2d_backward(const Conv2dShape& s, const float* grad_output, const float* input, const float* weight,
                     float* grad_input, float* grad_weight, float* grad_bias);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
