// conv2d as GEMMs over im2col column matrices, a chunk of images at a time. With R = in_channels /
// groups * KH * KW and P = out_h * out_w, for every image n and group g:
//   forward          Y_ng[C_out/groups, P] = W_g[C_out/groups, R] @ col_ng[R, P]
//   backward-data    dcol_ng[R, P] = W_g^T @ dY_ng, gathered back into the input by col2im
//   backward-weight  dW_g = sum over images of dY_ng @ col_ng^T
// One image's products are small (64 output channels are a single row of gemm tiles) and leave
// most of the GPU idle, so each gemm launch takes all the images of a chunk: as many as the
// workspace budget holds the column matrices of. The weight gradient sums per-image products, so
// it is split along K by image: partial sums per slot, added in slot order by one more kernel.
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
// The column matrices of a chunk of images fill up to 2^26 floats (256 MB), or one image's if it
// is larger: enough images per gemm to fill the GPU, in memory a training step can spare.
constexpr int64_t kWorkspaceBudget = int64_t(1) << 26;
// The weight gradient's partial sums: one per image of a chunk, up to 2^23 floats (32 MB) more.
// Fewer slots than images sum several images each, one gemm after another.
constexpr int64_t kPartialsBudget = int64_t(1) << 23;

__device__ int64_t first_index() { return blockIdx.x * int64_t(blockDim.x) + threadIdx.x; }
__device__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// For the chunk's images n: col[n][(c * KH + kh) * KW + kw, oh * OW + ow] = input[n, c, ih, iw]
// with ih = oh * stride_h - pad_h + kh * dilation_h (iw likewise), 0 where (ih, iw) is padding.
__global__ void im2col_kernel(Conv2dShape s, int64_t images, int64_t col_size, const float* input, float* col) {
  const int64_t plane = s.out_h * s.out_w, in_size = s.in_channels * s.in_h * s.in_w;
  const int64_t count = images * col_size;
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const int64_t n = i / col_size, j = i % col_size;
    const int64_t p = j % plane, row = j / plane;
    const int64_t oh = p / s.out_w, ow = p % s.out_w;
    const int64_t kw = row % s.kernel_w, kh = row / s.kernel_w % s.kernel_h, c = row / (s.kernel_w * s.kernel_h);
    const int64_t ih = oh * s.stride_h - s.pad_h + kh * s.dilation_h;
    const int64_t iw = ow * s.stride_w - s.pad_w + kw * s.dilation_w;
    const bool inside = ih >= 0 && ih < s.in_h && iw >= 0 && iw < s.in_w;
    col[i] = inside ? input[n * in_size + (c * s.in_h + ih) * s.in_w + iw] : 0.0f;
  }
}

// The adjoint of im2col as a gather, for the chunk's images n: input_grad[n, c, ih, iw] sums the
// col[n] entries that im2col copied from input[n, c, ih, iw], i.e. the taps (kh, kw) and outputs
// (oh, ow) with oh * stride_h = ih + pad_h - kh * dilation_h (and likewise across), in (kh, kw) order.
__global__ void col2im_kernel(Conv2dShape s, int64_t images, int64_t col_size, const float* col,
                              float* input_grad) {
  const int64_t plane = s.out_h * s.out_w, in_size = s.in_channels * s.in_h * s.in_w;
  const int64_t count = images * in_size;
  for (int64_t i = first_index(); i < count; i += grid_stride()) {
    const int64_t n = i / in_size, j = i % in_size;
    const int64_t iw = j % s.in_w, ih = j / s.in_w % s.in_h, c = j / (s.in_w * s.in_h);
    float sum = 0.0f;
    for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
      const int64_t y = ih + s.pad_h - kh * s.dilation_h;  // oh * stride_h
      if (y < 0 || y % s.stride_h != 0 || y / s.stride_h >= s.out_h) continue;
      const float* col_row =
          col + n * col_size + (c * s.kernel_h + kh) * s.kernel_w * plane + y / s.stride_h * s.out_w;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const int64_t x = iw + s.pad_w - kw * s.dilation_w;  // ow * stride_w
        if (x < 0 || x % s.stride_w != 0 || x / s.stride_w >= s.out_w) continue;
        sum += col_row[kw * plane + x / s.stride_w];
      }
    }
    input_grad[i] = sum;
  }
}

// grad_weight[i] = the sum over slots of partials[slot][i] (added to grad_weight[i] when
// accumulate), in slot order: a fixed order, so deterministic.
__global__ void sum_partials_kernel(int64_t size, int64_t slots, const float* partials, bool accumulate,
                                    float* grad_weight) {
  for (int64_t i = first_index(); i < size; i += grid_stride()) {
    float sum = 0.0f;
    for (int64_t slot = 0; slot < slots; ++slot) sum += partials[slot * size + i];
    grad_weight[i] = accumulate ? grad_weight[i] + sum : sum;
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

// The sizes of one group's products, and how the workspace splits the batch.
struct Geometry {
  int64_t group_out;    // C_out / groups
  int64_t col_rows;     // R = C_in / groups * KH * KW
  int64_t in_size;      // C_in * H * W, one image
  int64_t out_plane;    // P = out_h * out_w
  int64_t col_size;     // groups * R * P: one image's column matrix (its input image when pointwise)
  int64_t weight_size;  // C_out * R
  bool pointwise;       // 1x1, stride 1, no padding: col is the input image itself
  int64_t chunk;        // images per chunk: the workspace holds their column matrices
  int64_t slots;        // the weight gradient's partial sums, after the columns in the workspace
  int64_t col_floats;   // the workspace's floats before the partial sums
  int64_t workspace;    // col_floats + slots * weight_size
};

[[noreturn]] void workspace_overflow() {
  throw std::length_error("conv2d: the workspace (column matrices, C_in * KH * KW x OH * OW floats) overflows int64");
}

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.group_out = s.out_channels / s.groups;
  g.col_rows = s.in_channels / s.groups * s.kernel_h * s.kernel_w;
  g.in_size = s.in_channels * s.in_h * s.in_w;
  g.out_plane = s.out_h * s.out_w;
  g.weight_size = s.out_channels * g.col_rows;
  g.pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
                s.pad_w == 0 && s.out_h == s.in_h && s.out_w == s.in_w;
  g.col_size = 1;
  for (int64_t size : {s.in_channels, s.kernel_h, s.kernel_w, s.out_h, s.out_w})
    if (__builtin_mul_overflow(g.col_size, size, &g.col_size)) workspace_overflow();
  const int64_t per_image = g.pointwise ? 0 : g.col_size;
  g.chunk = per_image == 0 ? s.batch : std::min(s.batch, std::max<int64_t>(1, kWorkspaceBudget / per_image));
  g.slots = g.weight_size == 0 ? 0 : std::min(g.chunk, std::max<int64_t>(1, kPartialsBudget / g.weight_size));
  // Rounded up to 4 floats: the partial sums start 16-byte aligned, so the gemm stores float4.
  if (__builtin_add_overflow(g.chunk * per_image, 3, &g.col_floats)) workspace_overflow();
  g.col_floats -= g.col_floats % 4;
  if (__builtin_add_overflow(g.col_floats, g.slots * g.weight_size, &g.workspace)) workspace_overflow();
  return g;
}

// The column matrices of `images` images from `input` on: the images themselves when pointwise,
// else im2col's into workspace.
const float* columns(const Conv2dShape& s, const Geometry& g, const float* input, int64_t images, float* workspace,
                     cudaStream_t stream) {
  if (g.pointwise) return input;
  const int64_t count = images * g.col_size;
  im2col_kernel<<<grid_for(count, kThreads), kThreads, 0, stream>>>(s, images, g.col_size, input, workspace);
  check_launch("conv2d (im2col)");
  return workspace;
}

// Where an operand's matrix for image n and group g starts: n * image + g * group floats in.
struct PairStrides {
  int64_t image, group;
};

// C = A @ B for every (image, group) pair, batched over images or over groups, whichever are more,
// in a loop over the others: depthwise layers have more groups than images.
void gemm_pairs(int64_t images, int64_t groups, int64_t M, int64_t N, int64_t K, const float* a, PairStrides a_at,
                int64_t a_row_stride, int64_t a_col_stride, const float* b, PairStrides b_at, int64_t b_row_stride,
                int64_t b_col_stride, float beta, float* c, PairStrides c_at, int64_t ldc, cudaStream_t stream) {
  const bool over_images = images >= groups;
  const auto batched = [&](PairStrides at) { return over_images ? at.image : at.group; };
  const auto looped = [&](PairStrides at) { return over_images ? at.group : at.image; };
  for (int64_t i = 0; i < (over_images ? groups : images); ++i)
    gemm(over_images ? images : groups, M, N, K, 1.0f, a + i * looped(a_at), batched(a_at), a_row_stride,
         a_col_stride, b + i * looped(b_at), batched(b_at), b_row_stride, b_col_stride, beta, c + i * looped(c_at),
         batched(c_at), ldc, stream);
}

// Zeros for an output no product writes: a sum over nothing (no input channels, no output
// channels, no images). The gemm is never asked for an empty inner dimension.
void zero(float* data, int64_t count, cudaStream_t stream) {
  cudaMemsetAsync(data, 0, size_t(count) * sizeof(float), stream);
  check_launch("conv2d (zero fill)");  // the runtime reports a failed call as it does a failed launch
}

}  // namespace

int64_t conv2d_workspace_floats(const Conv2dShape& s) { return geometry(s).workspace; }

void conv2d(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output,
            float* workspace, cudaStream_t stream) {
  const Geometry g = geometry(s);
  const int64_t out_size = s.out_channels * g.out_plane;  // one image
  if (s.batch * out_size == 0) return;
  if (g.col_rows == 0) {
    zero(output, s.batch * out_size, stream);
  } else {
    for (int64_t n = 0; n < s.batch; n += g.chunk) {
      const int64_t images = std::min(g.chunk, s.batch - n);
      const float* col = columns(s, g, input + n * g.in_size, images, workspace, stream);
      gemm_pairs(images, s.groups, g.group_out, g.out_plane, g.col_rows, weight, {0, g.group_out * g.col_rows},
                 g.col_rows, 1, col, {g.col_size, g.col_rows * g.out_plane}, g.out_plane, 1, 0.0f,
                 output + n * out_size, {out_size, g.group_out * g.out_plane}, g.out_plane, stream);
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
      for (int64_t n = 0; n < s.batch; n += g.chunk) {
        const int64_t images = std::min(g.chunk, s.batch - n);
        // Pointwise, dcol is the images' gradient itself.
        float* col_grad = g.pointwise ? grad_input + n * g.in_size : workspace;
        // A(i, k) = W_g[k, i]: W_g^T by strides.
        gemm_pairs(images, s.groups, g.col_rows, g.out_plane, g.group_out, weight, {0, g.group_out * g.col_rows}, 1,
                   g.col_rows, grad_output + n * out_size, {out_size, g.group_out * g.out_plane}, g.out_plane, 1,
                   0.0f, col_grad, {g.col_size, g.col_rows * g.out_plane}, g.out_plane, stream);
        if (!g.pointwise) {
          col2im_kernel<<<grid_for(images * g.in_size, kThreads), kThreads, 0, stream>>>(
              s, images, g.col_size, workspace, grad_input + n * g.in_size);
          check_launch("conv2d_backward (col2im)");
        }
      }
    }
  }
  if (grad_weight && g.weight_size > 0) {
    if (s.batch == 0) zero(grad_weight, g.weight_size, stream);
    float* partials = workspace + g.col_floats;
    for (int64_t n = 0; n < s.batch; n += g.chunk) {
      const int64_t images = std::min(g.chunk, s.batch - n);
      const float* col = columns(s, g, input + n * g.in_size, images, workspace, stream);
      // Split-K over images for parallelism: slot i sums images i, i + slots, ... of the chunk,
      // in that order. B(k, j) = col_g[j, k]: col_g^T by strides.
      for (int64_t first = 0; first < images; first += g.slots)
        gemm_pairs(std::min(g.slots, images - first), s.groups, g.group_out, g.col_rows, g.out_plane,
                   grad_output + (n + first) * out_size, {out_size, g.group_out * g.out_plane}, g.out_plane, 1,
                   col + first * g.col_size, {g.col_size, g.col_rows * g.out_plane}, 1, g.out_plane,
                   first == 0 ? 0.0f : 1.0f, partials, {g.weight_size, g.group_out * g.col_rows}, g.col_rows, stream);
      // The first chunk writes dW, the others add to it.
      sum_partials_kernel<<<grid_for(g.weight_size, kThreads), kThreads, 0, stream>>>(
          g.weight_size, std::min(g.slots, images), partials, n > 0, grad_weight);
      check_launch("conv2d_backward (weight partial sums)");
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
