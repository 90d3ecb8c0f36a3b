// conv2d as GEMMs over im2col column matrices, one image at a time, every group of an image in
// one batched gemm. With R = in_channels / groups * KH * KW and P = out_h * out_w:
//   forward          Y_g[C_out/groups, P] = W_g[C_out/groups, R] @ col_g[R, P]
//   backward-data    dcol_g[R, P] = W_g^T @ dY_g, gathered back into the input by col2im
//   backward-weight  dW_g = sum over images of dY_g @ col_g^T
// col holds all groups' rows, group g's at rows [g R, (g + 1) R). A 1x1, stride-1, unpadded
// convolution skips im2col: the input image already is col. Every output element is written by
// one thread in a fixed order, so results are deterministic (no atomics).
#include "fastnn/cuda/conv2d.h"

#include <algorithm>
#include <stdexcept>

#include "cuda/launch.h"
#include "fastnn/cuda/gemm.h"

namespace fastnn::cuda {
namespace {

using cpu::Conv2dShape;

constexpr int kThreads = 256;
// grad_bias: one block per channel reduces in shared memory; a power of two for the tree.
constexpr int kReduceThreads = 256;

__device__ int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// One image: col[(c * KH + kh) * KW + kw, oh * OW + ow] = image[c, ih, iw] with
// ih = oh * stride_h - pad_h + kh * dilation_h (iw likewise), 0 where (ih, iw) is padding.
__global__ void im2col_kernel(Conv2dShape s, const float* image, float* col) {
  const int64_t plane = s.out_h * s.out_w;
  const int64_t count = s.in_channels * s.kernel_h * s.kernel_w * plane;
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const int64_t p = i % plane, row = i / plane;
    const int64_t oh = p / s.out_w, ow = p % s.out_w;
    const int64_t kw = row % s.kernel_w, kh = row / s.kernel_w % s.kernel_h, c = row / (s.kernel_w * s.kernel_h);
    const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dilation_h;
    const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dilation_w;
    const bool inside = ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w;
    col[i] = inside ? image[(c * s.in_h + ih) * s.in_w + iw] : 0.0f;
  }
}

// The adjoint of im2col as a gather, one image: image_grad[c, ih, iw] sums the col entries that
// im2col copied from image[c, ih, iw], i.e. the taps (kh, kw) and outputs (oh, ow) with
// oh * stride_h = ih + pad_h - kh * dilation_h (and likewise across), in (kh, kw) order.
__global__ void col2im_kernel(Conv2dShape s, const float* col, float* image_grad) {
  const int64_t plane = s.out_h * s.out_w;
  const int64_t count = s.in_channels * s.in_h * s.in_w;
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const int64_t iw = i % s.in_w, ih = i / s.in_w % s.in_h, c = i / (s.in_w * s.in_h);
    float sum = 0.0f;
    for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
      const int64_t y = ih + s.pad_h - kh * s.dilation_h;  // oh * stride_h
      if (y < 0 || y % s.stride_h != 0 || y / s.stride_h >= s.out_h) continue;
      const float* col_row = col + (c * s.kernel_h + kh) * s.kernel_w * plane + y / s.stride_h * s.out_w;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const int64_t x = iw + s.pad_w - kw * s.dilation_w;  // ow * stride_w
        if (x < 0 || x % s.stride_w != 0 || x / s.stride_w >= s.out_w) continue;
        sum += col_row[kw * plane + x / s.stride_w];
      }
    }
    image_grad[i] = sum;
  }
}

// output[n, c, p] += bias[c] over the whole batch.
__global__ void add_bias_kernel(int64_t count, int64_t plane, int64_t channels, const float* bias, float* output) {
  for (int64_t i = first_index(); i < count; i += grid_stride()) output[i] += bias[i / plane % channels];
}

// grad_bias[c] = sum of grad_output[n, c, p] over n and p: a block per channel, each thread
// summing a strided share, then a tree in shared memory (a fixed order: deterministic).
__global__ void bias_grad_kernel(int64_t batch, int64_t channels, int64_t plane, const float* grad_output,
                                 float* grad_bias) {
  __shared__ float partial[kReduceThreads];
  const int64_t count = batch * plane;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < count; j += kReduceThreads)
      sum += grad_output[(j / plane * channels + c) * plane + j % plane];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int width = kReduceThreads / 2; width > 0; width /= 2) {
      if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) grad_bias[c] = partial[0];
    __syncthreads();  // partial is rewritten for the next channel
  }
}

// The sizes of one group's products.
struct Geometry {
  int64_t group_out;  // C_out / groups
  int64_t col_rows;   // R = C_in / groups * KH * KW
  int64_t in_size;    // C_in * H * W, one image
  int64_t out_plane;  // P = out_h * out_w
  bool pointwise;     // 1x1, stride 1, no padding: col is the input image itself
};

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.group_out = s.out_channels / s.groups;
  g.col_rows = s.in_channels / s.groups * s.kernel_h * s.kernel_w;
  g.in_size = s.in_channels * s.in_h * s.in_w;
  g.out_plane = s.out_h * s.out_w;
  g.pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
                s.pad_w == 0 && s.out_h == s.in_h && s.out_w == s.in_w;
  return g;
}

// image's column matrix: the image itself when pointwise, else im2col's into workspace.
const float* columns(const Conv2dShape& s, const Geometry& g, const float* image, float* workspace,
                     cudaStream_t stream) {
  if (g.pointwise) return image;
  const int64_t count = s.in_channels * s.kernel_h * s.kernel_w * g.out_plane;
  im2col_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(s, image, workspace);
  check_launch("conv2d (im2col)");
  return workspace;
}

// Zeros for an output no product writes: a sum over nothing (no input channels, no output
// channels, no images). The gemm is never asked for an empty inner dimension.
void zero(float* data, int64_t count, cudaStream_t stream) {
  cudaMemsetAsync(data, 0, size_t(count) * sizeof(float), stream);
  check_launch("conv2d (zero fill)");  // the runtime reports a failed call as it does a failed launch
}

}  // namespace

int64_t conv2d_workspace_floats(const Conv2dShape& s) {
  if (geometry(s).pointwise) return 0;
  int64_t floats = 1;
  for (int64_t size : {s.in_channels, s.kernel_h, s.kernel_w, s.out_h, s.out_w})
    if (__builtin_mul_overflow(floats, size, &floats))
      throw std::length_error("conv2d: the column matrix (C_in * KH * KW x OH * OW floats) overflows int64");
  return floats;
}

void conv2d(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output,
            float* workspace, cudaStream_t stream) {
  const Geometry g = geometry(s);
  const int64_t out_size = s.out_channels * g.out_plane;  // one image
  if (s.batch * out_size == 0) return;
  if (g.col_rows == 0) {
    zero(output, s.batch * out_size, stream);
  } else {
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* col = columns(s, g, input + n * g.in_size, workspace, stream);
      gemm(s.groups, g.group_out, g.out_plane, g.col_rows, 1.0f, weight, g.group_out * g.col_rows, g.col_rows, 1,
           col, g.col_rows * g.out_plane, g.out_plane, 1, 0.0f, output + n * out_size, g.group_out * g.out_plane,
           g.out_plane, stream);
    }
  }
  if (bias) {
    const int64_t count = s.batch * out_size;
    add_bias_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(count, g.out_plane, s.out_channels, bias,
                                                                        output);
    check_launch("conv2d (bias)");
  }
}

void conv2d_backward(const Conv2dShape& s, const float* grad_output, const float* input, const float* weight,
                     float* grad_input, float* grad_weight, float* grad_bias, float* workspace,
                     cudaStream_t stream) {
  const Geometry g = geometry(s);
  const int64_t out_size = s.out_channels * g.out_plane;  // one image
  if (grad_input && s.batch * g.in_size > 0) {
    if (g.group_out == 0) {
      zero(grad_input, s.batch * g.in_size, stream);
    } else {
      for (int64_t n = 0; n < s.batch; ++n) {
        float* image_grad = grad_input + n * g.in_size;
        // Pointwise, dcol is the image's gradient itself.
        float* col_grad = g.pointwise ? image_grad : workspace;
        // A(i, k) = W_g[k, i]: W_g^T by strides.
        gemm(s.groups, g.col_rows, g.out_plane, g.group_out, 1.0f, weight, g.group_out * g.col_rows, 1,
             g.col_rows, grad_output + n * out_size, g.group_out * g.out_plane, g.out_plane, 1, 0.0f, col_grad,
             g.col_rows * g.out_plane, g.out_plane, stream);
        if (!g.pointwise) {
          col2im_kernel<<<grid_for(g.in_size, kThreads), kThreads, 0, stream>>>(s, workspace, image_grad);
          check_launch("conv2d_backward (col2im)");
        }
      }
    }
  }
  if (grad_weight && s.out_channels * g.col_rows > 0) {
    if (s.batch == 0) zero(grad_weight, s.out_channels * g.col_rows, stream);
    for (int64_t n = 0; n < s.batch; ++n) {
      const float* col = columns(s, g, input + n * g.in_size, workspace, stream);
      // B(k, j) = col_g[j, k]: col_g^T by strides; the first image writes dW, the others add.
      gemm(s.groups, g.group_out, g.col_rows, g.out_plane, 1.0f, grad_output + n * out_size,
           g.group_out * g.out_plane, g.out_plane, 1, col, g.col_rows * g.out_plane, 1, g.out_plane,
           n == 0 ? 0.0f : 1.0f, grad_weight, g.group_out * g.col_rows, g.col_rows, stream);
    }
  }
  if (grad_bias && s.out_channels > 0) {
    const auto blocks = unsigned(std::min<int64_t>(s.out_channels, 65535));
    bias_grad_kernel<<<blocks, kReduceThreads, 0, stream>>>(s.batch, s.out_channels, g.out_plane, grad_output,
                                                             grad_bias);
    check_launch("conv2d_backward (grad_bias)");
  }
}

}  // namespace fastnn::cuda
