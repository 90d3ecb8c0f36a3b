// Elementwise activations on the CPU, as torch.nn.functional defines them. Arrays are float32,
// contiguous, n elements; each backward writes grad_x = grad_y * f'(x).
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

void relu(int64_t n, const float* x, float* y);
// relu'(0) = 0.
void relu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x);

void leaky_relu(int64_t n, const float* x, float negative_slope, float* y);
// leaky_relu'(0) = negative_slope.
void leaky_relu_backward(int64_t n, const float* grad_y, const float* x, float negative_slope, float* grad_x);

// For sigmoid and tanh, the backward uses the forward's output y when it is given (saving the
// exp) and recomputes from x when y is null.
void sigmoid(int64_t n, const float* x, float* y);
void sigmoid_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x);

void tanh(int64_t n, const float* x, float* y);
void tanh_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x);

// x * Phi(x), or with tanh_approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu(int64_t n, const float* x, bool tanh_approximation, float* y);
void gelu_backward(int64_t n, const float* grad_y, const float* x, bool tanh_approximation, float* grad_x);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
