// Activations: threads split the array into contiguous slices and run the ISA's vector kernel
// on each.
#include "fastnn/activation.h"

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

// A parallel region costs a few microseconds, about what one thread needs for ~16K elements of
// the cheapest op (relu at a few GB/s), so smaller slices stay on one thread.
constexpr int64_t kMinPerThread = int64_t(1) << 14;

const ActivationKernels& kernels() { return *isa().activation; }

void forward(ActivationForward kernel, int64_t n, const float* x, float* y) {
  parallel_for(n, kMinPerThread, [&](int64_t begin, int64_t end) { kernel(end - begin, x + begin, y + begin); });
}

void backward(ActivationBackward kernel, int64_t n, const float* grad_y, const float* x, float* grad_x) {
  parallel_for(n, kMinPerThread, [&](int64_t begin, int64_t end) {
    kernel(end - begin, grad_y + begin, x + begin, grad_x + begin);
  });
}

}  // namespace

void relu(int64_t n, const float* x, float* y) { forward(kernels().relu, n, x, y); }

void relu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x) {
  backward(kernels().relu_backward, n, grad_y, x, grad_x);
}

void leaky_relu(int64_t n, const float* x, float negative_slope, float* y) {
  auto kernel = kernels().leaky_relu;
  parallel_for(n, kMinPerThread, [&](int64_t begin, int64_t end) {
    kernel(end - begin, x + begin, negative_slope, y + begin);
  });
}

void leaky_relu_backward(int64_t n, const float* grad_y, const float* x, float negative_slope, float* grad_x) {
  auto kernel = kernels().leaky_relu_backward;
  parallel_for(n, kMinPerThread, [&](int64_t begin, int64_t end) {
    kernel(end - begin, grad_y + begin, x + begin, negative_slope, grad_x + begin);
  });
}

void sigmoid(int64_t n, const float* x, float* y) { forward(kernels().sigmoid, n, x, y); }

void sigmoid_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x) {
  if (y)
    backward(kernels().sigmoid_backward_from_output, n, grad_y, y, grad_x);
  else
    backward(kernels().sigmoid_backward, n, grad_y, x, grad_x);
}

void tanh(int64_t n, const float* x, float* y) { forward(kernels().tanh, n, x, y); }

void tanh_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x) {
  if (y)
    backward(kernels().tanh_backward_from_output, n, grad_y, y, grad_x);
  else
    backward(kernels().tanh_backward, n, grad_y, x, grad_x);
}

void gelu(int64_t n, const float* x, bool tanh_approximation, float* y) {
  forward(tanh_approximation ? kernels().gelu_tanh : kernels().gelu, n, x, y);
}

void gelu_backward(int64_t n, const float* grad_y, const float* x, bool tanh_approximation, float* grad_x) {
  backward(tanh_approximation ? kernels().gelu_tanh_backward : kernels().gelu_backward, n, grad_y, x, grad_x);
}

}  // namespace fastnn::cpu
