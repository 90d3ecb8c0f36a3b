// Elementwise activations on NVIDIA GPUs, with the semantics of fastnn::cpu's (fastnn/activation.h):
// the same functions and arguments plus the stream. Pointers are device memory, float32, n
// elements each (any alignment to 4 bytes; 16-byte aligned arrays take vector loads). Every
// function launches on `stream` and returns without waiting; a failed launch throws
// std::runtime_error with the CUDA error text. Accuracy rests on CUDA's own math (no fast-math
// intrinsics): expf and tanhf within 2 ULP, normcdff within 5, so sigmoid and tanh are within
// ~3 ULP and exact GELU within ~6.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

void relu(int64_t n, const float* x, float* y, cudaStream_t stream);
// relu'(0) = 0.
void relu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x, cudaStream_t stream);

void leaky_relu(int64_t n, const float* x, float negative_slope, float* y, cudaStream_t stream);
// leaky_relu'(0) = negative_slope.
void leaky_relu_backward(int64_t n, const float* grad_y, const float* x, float negative_slope, float* grad_x,
                         cudaStream_t stream);

// For sigmoid and tanh, the backward uses the forward's output y when it is given (saving the
// exp) and recomputes from x when y is null.
void sigmoid(int64_t n, const float* x, float* y, cudaStream_t stream);
void sigmoid_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x,
                      cudaStream_t stream);

void tanh(int64_t n, const float* x, float* y, cudaStream_t stream);
void tanh_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x,
                   cudaStream_t stream);

// x * Phi(x), or with tanh_approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
void gelu(int64_t n, const float* x, bool tanh_approximation, float* y, cudaStream_t stream);
void gelu_backward(int64_t n, const float* grad_y, const float* x, bool tanh_approximation, float* grad_x,
                   cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
