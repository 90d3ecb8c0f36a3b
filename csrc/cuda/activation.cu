// Activations on the GPU: one elementwise kernel template, a grid-stride loop applying an op
// functor to each element, and the functors, which follow activation_simd.cpp formula by formula
// so that both devices agree on NaN, infinities, the kinks and the tails. The math is CUDA's
// accurate library (expf, tanhf, normcdff; nvcc's defaults: IEEE division, no flush to zero),
// never the __expf-style intrinsics, whose relative error grows without bound in the tails.
#include <cstdint>

#include "cuda/launch.h"
#include "fastnn/cuda/activation.h"

namespace fastnn::cuda {
namespace {

constexpr int kThreads = 256;

// op applied lane by lane to float4s: op(a.x, b.x), ...
template <class Op, class... Vectors>
__device__ float4 apply_to_lanes(const Op& op, const Vectors&... v) {
  return make_float4(op(v.x...), op(v.y...), op(v.z...), op(v.w...));
}

// y[i] = op(x[i]...) for i < n. With `vectorized` (every pointer 16-byte aligned) the first
// n / 4 * 4 elements go as float4s, one per thread and step, and the scalar loop takes the
// n % 4 left over (fewer than the grid's threads, so one step); otherwise it takes them all.
// Memory-bound: a thread's float4 is one 16-byte access, so a warp moves 512 contiguous bytes.
template <class Op, class... Inputs>
__global__ void elementwise(int64_t n, bool vectorized, Op op, float* __restrict__ y,
                            const Inputs* __restrict__... x) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vectorized) {
    const int64_t vectors = n / 4;
    for (int64_t i = first; i < vectors; i += stride)
      reinterpret_cast<float4*>(y)[i] = apply_to_lanes(op, reinterpret_cast<const float4*>(x)[i]...);
    done = vectors * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) y[i] = op(x[i]...);
}

bool aligned_to_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// y[0:n] = op(x[0:n]...) on `stream`. CuPy's allocations are 256-byte aligned, so only views
// at an offset (x[1:]) take the scalar path.
template <class Op, class... Inputs>
void launch(const char* name, int64_t n, Op op, float* y, cudaStream_t stream, const Inputs*... x) {
  if (n == 0) return;
  const bool vectorized = aligned_to_16(y) && (aligned_to_16(x) && ...);
  const int64_t threads_needed = vectorized ? (n + 3) / 4 : n;
  elementwise<<<grid_for(threads_needed, kThreads), kThreads, 0, stream>>>(n, vectorized, op, y, x...);
  check_launch(name);
}

struct Relu {
  __device__ float operator()(float x) const { return x < 0.0f ? 0.0f : x; }  // NaN passes through, as torch
};

struct ReluBackward {
  __device__ float operator()(float g, float x) const { return x > 0.0f ? g : 0.0f; }  // relu'(0) = 0
};

struct LeakyRelu {
  float negative_slope;
  __device__ float operator()(float x) const { return x > 0.0f ? x : x * negative_slope; }
};

struct LeakyReluBackward {
  float negative_slope;
  __device__ float operator()(float g, float x) const { return x > 0.0f ? g : g * negative_slope; }
};

// 1 / (1 + e^-x) as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, e = e^-|x| <= 1: nothing
// overflows and the negative tail keeps full relative precision. expf (2 ULP) and two correctly
// rounded operations: within ~3 ULP.
__device__ float sigmoid(float x) {
  const float e = expf(-fabsf(x));
  return (x < 0.0f ? e : 1.0f) / (1.0f + e);
}

// sigmoid'(x) = e / (1 + e)^2 with e = e^-|x|: no 1 - sigmoid(x) cancellation in the tails.
__device__ float sigmoid_slope(float x) {
  const float e = expf(-fabsf(x));
  const float d = 1.0f + e;
  return e / (d * d);
}

struct Sigmoid {
  __device__ float operator()(float x) const { return sigmoid(x); }
};

struct SigmoidBackward {
  __device__ float operator()(float g, float x) const { return g * sigmoid_slope(x); }
};

struct SigmoidBackwardFromOutput {
  __device__ float operator()(float g, float s) const { return g * (s * (1.0f - s)); }
};

struct Tanh {
  __device__ float operator()(float x) const { return tanhf(x); }  // 2 ULP, relative also near 0
};

// tanh'(x) = 1 - tanh(x)^2 = 4 sigmoid'(2x), which keeps full precision where tanh saturates.
struct TanhBackward {
  __device__ float operator()(float g, float x) const { return g * (4.0f * sigmoid_slope(2.0f * x)); }
};

struct TanhBackwardFromOutput {
  __device__ float operator()(float g, float t) const { return g * (1.0f - t * t); }
};

// Exact GELU x Phi(x). normcdff (5 ULP) keeps relative precision in the negative tail, so the
// product is within ~6 ULP there too; Phi underflows to 0 below x ~ -14, giving -0, and
// -inf * Phi(-inf) = -inf * 0 is NaN, as on the CPU and in torch.
struct Gelu {
  __device__ float operator()(float x) const { return x * normcdff(x); }
};

constexpr float kInvSqrt2Pi = 0.398942280f;

// d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = e^(-x^2/2) / sqrt(2 pi). Near x = -0.75 the two
// terms cancel, so the slope is accurate in absolute terms (~1e-7), as the CPU's is. At +-inf,
// x * e^(-inf) = inf * 0 makes it NaN, as on the CPU and in torch.
struct GeluBackward {
  __device__ float operator()(float g, float x) const {
    return g * (normcdff(x) + x * (expf(-0.5f * x * x) * kInvSqrt2Pi));
  }
};

// GELU with the tanh approximation, as the CPU forms it: 1 + tanh(u) = 2 sigmoid(2u) with
// u = sqrt(2/pi) (x + 0.044715 x^3), and x sigmoid(2u) does not cancel for negative x as
// 1 + tanh(u) does.
constexpr float kGeluTwoSqrt2OverPi = 1.5957691216057308f;  // 2 sqrt(2/pi)
constexpr float kGeluCubic = 0.044715f;

__device__ float gelu_tanh_arg(float x) { return kGeluTwoSqrt2OverPi * (x + kGeluCubic * x * x * x); }

struct GeluTanh {
  __device__ float operator()(float x) const { return x * sigmoid(gelu_tanh_arg(x)); }
};

// d/dx x sigmoid(v) = sigmoid(v) + x sigmoid'(v) v', v = 2u. With e = e^-|v| and r = 1 / (1 + e),
// sigmoid(v) = (v < 0 ? e : 1) r and sigmoid'(v) = e r^2. Where sigmoid'(v) is exactly 0 the
// second term is 0, even when x v' overflows to inf for |x| > ~1e19.
struct GeluTanhBackward {
  __device__ float operator()(float g, float x) const {
    const float v = gelu_tanh_arg(x);
    const float e = expf(-fabsf(v));
    const float r = 1.0f / (1.0f + e);
    const float ds = e * r * r;
    const float dv = kGeluTwoSqrt2OverPi * (1.0f + 3.0f * kGeluCubic * x * x);
    const float second = ds == 0.0f ? 0.0f : x * ds * dv;
    return g * ((v < 0.0f ? e : 1.0f) * r + second);
  }
};

// The backward from the forward's output y when the caller kept it, else from the input x.
template <class FromInput, class FromOutput>
void backward_from_output_if_saved(const char* name, int64_t n, const float* grad_y, const float* x, const float* y,
                                   float* grad_x, cudaStream_t stream) {
  if (y)
    launch(name, n, FromOutput{}, grad_x, stream, grad_y, y);
  else
    launch(name, n, FromInput{}, grad_x, stream, grad_y, x);
}

}  // namespace

void relu(int64_t n, const float* x, float* y, cudaStream_t stream) { launch("relu", n, Relu{}, y, stream, x); }

void relu_backward(int64_t n, const float* grad_y, const float* x, float* grad_x, cudaStream_t stream) {
  launch("relu_backward", n, ReluBackward{}, grad_x, stream, grad_y, x);
}

void leaky_relu(int64_t n, const float* x, float negative_slope, float* y, cudaStream_t stream) {
  launch("leaky_relu", n, LeakyRelu{negative_slope}, y, stream, x);
}

void leaky_relu_backward(int64_t n, const float* grad_y, const float* x, float negative_slope, float* grad_x,
                         cudaStream_t stream) {
  launch("leaky_relu_backward", n, LeakyReluBackward{negative_slope}, grad_x, stream, grad_y, x);
}

void sigmoid(int64_t n, const float* x, float* y, cudaStream_t stream) {
  launch("sigmoid", n, Sigmoid{}, y, stream, x);
}

void sigmoid_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x,
                      cudaStream_t stream) {
  backward_from_output_if_saved<SigmoidBackward, SigmoidBackwardFromOutput>("sigmoid_backward", n, grad_y, x, y,
                                                                           grad_x, stream);
}

void tanh(int64_t n, const float* x, float* y, cudaStream_t stream) { launch("tanh", n, Tanh{}, y, stream, x); }

void tanh_backward(int64_t n, const float* grad_y, const float* x, const float* y, float* grad_x,
                   cudaStream_t stream) {
  backward_from_output_if_saved<TanhBackward, TanhBackwardFromOutput>("tanh_backward", n, grad_y, x, y, grad_x,
                                                                     stream);
}

void gelu(int64_t n, const float* x, bool tanh_approximation, float* y, cudaStream_t stream) {
  if (tanh_approximation)
    launch("gelu", n, GeluTanh{}, y, stream, x);
  else
    launch("gelu", n, Gelu{}, y, stream, x);
}

void gelu_backward(int64_t n, const float* grad_y, const float* x, bool tanh_approximation, float* grad_x,
                   cudaStream_t stream) {
  if (tanh_approximation)
    launch("gelu_backward", n, GeluTanhBackward{}, grad_x, stream, grad_y, x);
  else
    launch("gelu_backward", n, GeluBackward{}, grad_x, stream, grad_y, x);
}

}  // namespace fastnn::cuda
