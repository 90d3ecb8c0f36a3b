// Pooling kernels: the forwards run one thread per output element, the backwards one thread
// per input element, each in a grid-stride loop. The backwards gather (each input element sums
// the windows that cover it) rather than scatter with atomics: no two threads write one
// element, so the sums are deterministic, and they add in the CPU kernels' order, so the
// results match them bitwise (all but a hand-made `saved`'s strays, see the stray kernel).
#include <cmath>

#include "cuda/launch.h"
#include "fastnn/cuda/pool.h"
#include "pool_window.h"

namespace fastnn::cuda {
namespace {

using cpu::Pool2dShape;

constexpr int kThreads = 256;

// Calls item(i) for each i < n, spread over the grid.
template <class Item>
__device__ void for_each_item(int64_t n, const Item& item) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) item(i);
}

// The outputs o < out whose window along one axis spans input position i: window o starts at
// o * stride - pad and ends (kernel - 1) * dilation later, so o * stride lies in
// [i + pad - (kernel - 1) * dilation, i + pad]. With dilation, is_tap says which hit i.
__device__ Span covering(int64_t i, int64_t stride, int64_t pad, int64_t dilation, int64_t kernel, int64_t out) {
  const int64_t last = i + pad, first = last - (kernel - 1) * dilation;
  const int64_t end = last / stride + 1;
  return {first <= 0 ? 0 : (first + stride - 1) / stride, end < out ? end : out};
}

// Whether input position i is a tap of output o's window along one axis.
__device__ bool is_tap(int64_t i, int64_t o, int64_t stride, int64_t pad, int64_t dilation, int64_t kernel) {
  const int64_t offset = i + pad - o * stride;
  return offset >= 0 && offset % dilation == 0 && offset / dilation < kernel;
}

struct Argmax {
  float value;
  int64_t at;  // offset ih * in_w + iw in the plane, or -1
};

// Output (oh, ow) of max pooling one plane, by the CPU kernel's running-max rule: a tap
// replaces the max when greater, when NaN (so NaN propagates) or when it is the window's first
// input tap (so an all -inf window still has an argmax); ties keep the earlier tap in window
// order. relu as fastnn/pool.h states it: relu of the max, and no argmax where that max is not
// positive (NaN included, which relu passes).
__device__ Argmax window_max(const Pool2dShape& s, const float* plane, int64_t oh, int64_t ow, bool relu) {
  const int64_t top = oh * s.stride_h - s.pad_h, left = ow * s.stride_w - s.pad_w;
  const Span rows = inside(top, s.dilation_h, s.in_h, s.kernel_h);
  const Span cols = inside(left, s.dilation_w, s.in_w, s.kernel_w);
  Argmax best{-INFINITY, -1};
  for (int64_t kh = rows.begin; kh < rows.end; ++kh) {
    const int64_t row = (top + kh * s.dilation_h) * s.in_w + left;
    for (int64_t kw = cols.begin; kw < cols.end; ++kw) {
      const int64_t at = row + kw * s.dilation_w;
      const float value = plane[at];
      if (value > best.value || isnan(value) || best.at < 0) best = {value, at};
    }
  }
  if (relu && best.at >= 0) {
    best.at = best.value > 0 ? best.at : -1;
    best.value = best.value < 0 ? 0.0f : best.value;
  }
  return best;
}

__global__ void max_pool2d_kernel(Pool2dShape s, const float* input, float* output, int64_t* indices, bool relu) {
  const int64_t out_plane = s.out_h * s.out_w;
  for_each_item(s.planes * out_plane, [&](int64_t o) {
    const int64_t p = o / out_plane, oh = o % out_plane / s.out_w, ow = o % s.out_w;
    const Argmax best = window_max(s, input + p * s.in_h * s.in_w, oh, ow, relu);
    output[o] = best.value;
    if (indices) indices[o] = best.at;
  });
}

// Each input element sums the grad_output of the windows covering it whose argmax (saved in
// indices, or recomputed from input when indices is null) is that element, in the CPU
// kernel's order: oh, then ow, ascending.
__global__ void max_pool2d_backward_kernel(Pool2dShape s, const float* grad_output, const float* input,
                                           const int64_t* indices, float* grad_input, bool relu) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  for_each_item(s.planes * in_plane, [&](int64_t i) {
    const int64_t p = i / in_plane, at = i % in_plane, ih = at / s.in_w, iw = at % s.in_w;
    const Span rows = covering(ih, s.stride_h, s.pad_h, s.dilation_h, s.kernel_h, s.out_h);
    const Span cols = covering(iw, s.stride_w, s.pad_w, s.dilation_w, s.kernel_w, s.out_w);
    float sum = 0.0f;
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      if (!is_tap(ih, oh, s.stride_h, s.pad_h, s.dilation_h, s.kernel_h)) continue;
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
        if (!is_tap(iw, ow, s.stride_w, s.pad_w, s.dilation_w, s.kernel_w)) continue;
        const int64_t o = p * out_plane + oh * s.out_w + ow;
        const int64_t picked = indices ? indices[o] : window_max(s, input + p * in_plane, oh, ow, relu).at;
        if (picked == at) sum += grad_output[o];
      }
    }
    grad_input[i] = sum;
  });
}

// Adds what the gather cannot see: saved indices naming an input outside their own window
// (only a hand-made `saved` has them). Atomics, since several may name one input; forward's
// own indices never get here, so the usual backward stays deterministic.
__global__ void max_pool2d_backward_stray_kernel(Pool2dShape s, const float* grad_output, const int64_t* indices,
                                                 float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  for_each_item(s.planes * out_plane, [&](int64_t o) {
    const int64_t at = indices[o];
    if (at < 0 || at >= in_plane) return;  // -1 picks nothing; out of range is skipped (see pool.h)
    const int64_t p = o / out_plane, oh = o % out_plane / s.out_w, ow = o % s.out_w;
    if (is_tap(at / s.in_w, oh, s.stride_h, s.pad_h, s.dilation_h, s.kernel_h) &&
        is_tap(at % s.in_w, ow, s.stride_w, s.pad_w, s.dilation_w, s.kernel_w))
      return;  // gathered already
    atomicAdd(grad_input + p * in_plane + at, grad_output[o]);
  });
}

// 1 / divisor of output (oh, ow).
__device__ float output_scale(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override, int64_t oh,
                              int64_t ow) {
  return avg_scale(window_size(oh, s.stride_h, s.pad_h, s.kernel_h, s.in_h),
                   window_size(ow, s.stride_w, s.pad_w, s.kernel_w, s.in_w), count_include_pad, divisor_override);
}

// Sums each window's input taps in window order, then scales: the CPU kernel's arithmetic.
__global__ void avg_pool2d_kernel(Pool2dShape s, bool count_include_pad, int64_t divisor_override,
                                  const float* input, float* output) {
  const int64_t out_plane = s.out_h * s.out_w;
  for_each_item(s.planes * out_plane, [&](int64_t o) {
    const int64_t p = o / out_plane, oh = o % out_plane / s.out_w, ow = o % s.out_w;
    const int64_t top = oh * s.stride_h - s.pad_h, left = ow * s.stride_w - s.pad_w;
    const Span rows = inside(top, s.dilation_h, s.in_h, s.kernel_h);
    const Span cols = inside(left, s.dilation_w, s.in_w, s.kernel_w);
    const float* plane = input + p * s.in_h * s.in_w;
    float sum = 0.0f;
    for (int64_t kh = rows.begin; kh < rows.end; ++kh) {
      const float* row = plane + (top + kh * s.dilation_h) * s.in_w + left;
      for (int64_t kw = cols.begin; kw < cols.end; ++kw) sum += row[kw * s.dilation_w];
    }
    output[o] = sum * output_scale(s, count_include_pad, divisor_override, oh, ow);
  });
}

// Each input element sums its windows' grad_output / divisor. The CPU kernel adds them row by
// row of windows, and within a row tap by tap: kw ascending meets the windows covering one
// input in ow descending, the order used here.
__global__ void avg_pool2d_backward_kernel(Pool2dShape s, bool count_include_pad, int64_t divisor_override,
                                           const float* grad_output, float* grad_input) {
  const int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  for_each_item(s.planes * in_plane, [&](int64_t i) {
    const int64_t p = i / in_plane, ih = i % in_plane / s.in_w, iw = i % s.in_w;
    const Span rows = covering(ih, s.stride_h, s.pad_h, s.dilation_h, s.kernel_h, s.out_h);
    const Span cols = covering(iw, s.stride_w, s.pad_w, s.dilation_w, s.kernel_w, s.out_w);
    float sum = 0.0f;
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      if (!is_tap(ih, oh, s.stride_h, s.pad_h, s.dilation_h, s.kernel_h)) continue;
      for (int64_t ow = cols.end - 1; ow >= cols.begin; --ow) {
        if (!is_tap(iw, ow, s.stride_w, s.pad_w, s.dilation_w, s.kernel_w)) continue;
        // Rounded before the sum, as the CPU kernel's share is: no fused multiply-add.
        sum += __fmul_rn(output_scale(s, count_include_pad, divisor_override, oh, ow),
                         grad_output[p * out_plane + oh * s.out_w + ow]);
      }
    }
    grad_input[i] = sum;
  });
}

}  // namespace

void max_pool2d(const Pool2dShape& s, const float* input, float* output, int64_t* indices, bool relu,
                cudaStream_t stream) {
  const int64_t outputs = s.planes * s.out_h * s.out_w;
  max_pool2d_kernel<<<grid_for(outputs, kThreads), kThreads, 0, stream>>>(s, input, output, indices, relu);
  check_launch("max_pool2d");
}

void max_pool2d_backward(const Pool2dShape& s, const float* grad_output, const float* input,
                         const int64_t* indices, float* grad_input, bool relu, cudaStream_t stream) {
  const int64_t inputs = s.planes * s.in_h * s.in_w;
  max_pool2d_backward_kernel<<<grid_for(inputs, kThreads), kThreads, 0, stream>>>(s, grad_output, input, indices,
                                                                                  grad_input, relu);
  check_launch("max_pool2d_backward");
  if (!indices) return;
  const int64_t outputs = s.planes * s.out_h * s.out_w;
  max_pool2d_backward_stray_kernel<<<grid_for(outputs, kThreads), kThreads, 0, stream>>>(s, grad_output, indices,
                                                                                         grad_input);
  check_launch("max_pool2d_backward");
}

void avg_pool2d(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override, const float* input,
                float* output, cudaStream_t stream) {
  const int64_t outputs = s.planes * s.out_h * s.out_w;
  avg_pool2d_kernel<<<grid_for(outputs, kThreads), kThreads, 0, stream>>>(s, count_include_pad, divisor_override,
                                                                          input, output);
  check_launch("avg_pool2d");
}

void avg_pool2d_backward(const Pool2dShape& s, bool count_include_pad, int64_t divisor_override,
                         const float* grad_output, float* grad_input, cudaStream_t stream) {
  const int64_t inputs = s.planes * s.in_h * s.in_w;
  avg_pool2d_backward_kernel<<<grid_for(inputs, kThreads), kThreads, 0, stream>>>(s, count_include_pad,
                                                                                  divisor_override, grad_output,
                                                                                  grad_input);
  check_launch("avg_pool2d_backward");
}

}  // namespace fastnn::cuda
