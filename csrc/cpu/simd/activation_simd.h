// Elementwise activation kernels, compiled once per ISA (see CMakeLists.txt). Each works on a
// contiguous slice [0, n) on the calling thread; activation.cpp splits the work across threads.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

// y[i] = f(x[i])
using ActivationForward = void (*)(int64_t n, const float* x, float* y);
// grad_x[i] = grad_y[i] * f'(x[i]); the *_from_output variants take y = f(x) in place of x.
using ActivationBackward = void (*)(int64_t n, const float* grad_y, const float* x, float* grad_x);

struct ActivationKernels {
  ActivationForward relu, sigmoid, tanh, gelu, gelu_tanh;
  ActivationBackward relu_backward, sigmoid_backward, tanh_backward, gelu_backward, gelu_tanh_backward;
  ActivationBackward sigmoid_backward_from_output, tanh_backward_from_output;
  void (*leaky_relu)(int64_t n, const float* x, float negative_slope, float* y);
  void (*leaky_relu_backward)(int64_t n, const float* grad_y, const float* x, float negative_slope,
                              float* grad_x);
  // cpu/dropout_slice.h compiled for this ISA.
  void (*dropout)(int64_t n, const float* x, uint64_t threshold, float scale, uint64_t seed,
                  int64_t first_element, float* y);
};

}  // namespace fastnn::cpu
