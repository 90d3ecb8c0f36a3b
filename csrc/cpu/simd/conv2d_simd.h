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
  int64_t forward_channels;  // the channel block of direct_forward's weight
  int64_t data_taps;         // the tap block of direct_backward's weight
  // out[o * out_plane + oh * out_w + ow] = bias[o] + sum_r weight[(o / forward_channels * taps + r) *
  // forward_channels + o % forward_channels] * tap r, for o < channels; weight and bias are
  // zero-padded to whole blocks of forward_channels.
  void (*direct_forward)(const float* input, int64_t row_stride, const int64_t* offsets, int64_t taps,
                         const float* weight, const float* bias, int64_t channels, float* out, int64_t out_plane,
                         int64_t out_h, int64_t out_w);
  // grad_weight_lanes[(o * taps + r) * width + l] += lane l of the sum over (oh, ow) of
  // grad[(o * out_h + oh) * out_w + ow] * tap r (the caller adds the lanes up), and
  // grad_input[i] = sum over (r, oh, ow) with offsets[r] + oh * row_stride + ow = i of sum over o of
  // weight[o * taps_padded + r] * grad[(o * out_h + oh) * out_w + ow], for i in the padded input's planes of
  // `plane` floats; weight's rows are zero-padded to taps_padded, a multiple of data_taps. Either
  // gradient is skipped when null: grad_input needs weight and scratch, taps * (2 * plane + width)
  // floats that are zero before the first call and left as the call leaves them for the next of
  // the same shape; grad_weight_lanes needs input. grad is read only inside its planes;
  // next_grad (the next image's, or null) is prefetched.
  void (*direct_backward)(const float* input, int64_t row_stride, int64_t plane, const int64_t* offsets,
                          int64_t taps, const float* grad, const float* next_grad, int64_t channels, int64_t out_h,
                          int64_t out_w, const float* weight, float* grad_weight_lanes, float* grad_input,
                          float* scratch);

  // dst[r * dst_row_stride + i] = src[r * src_row_stride + first + i * stride] for r < rows and
  // i < count, zero where first + i * stride is outside [0, w): rows of im2col (strides 1 and 2
  // in vectors, others scalar). Reads only inside rows [0, w).
  void (*gather_rows)(const float* src, int64_t w, int64_t src_row_stride, int64_t rows, int64_t first,
                      int64_t stride, int64_t count, float* dst, int64_t dst_row_stride);

  // The adjoint of gather_rows, a row of col2im: dst[r * dst_row_stride + first + i * stride] +=
  // src[r * src_row_stride + i] for r < rows and i < count where first + i * stride is inside
  // [0, w). Touches only dst rows [0, w).
  void (*scatter_add_rows)(const float* src, int64_t src_row_stride, int64_t rows, int64_t count, float* dst,
                           int64_t w, int64_t dst_row_stride, int64_t first, int64_t stride);

  // Winograd F(2x2, 3x3) transforms (see conv2d.cpp) over tile rows [0, tile_rows) of one image,
  // vectorized along the tiles_w tiles of a row. A block's tiles are numbered t = th * tiles_w +
  // tw, and a transformed array x of it holds element (xi, channel, t) at
  // x[xi * xi_stride + channel * row + t], 0 <= xi < 16; row has `width` floats of slack past the
  // block's last tile, which the last partial vector of a tile row overruns.
  //
  // The input is one image's planes [channels, h, w] as they are: tile (th, tw) reads rows
  // first_row + 2th .. + 3 and columns first_column + 2tw .. + 3 (negative for padding), zero
  // outside the planes.
  void (*winograd_input)(const float* image, int64_t h, int64_t w, int64_t first_row, int64_t first_column,
                         int64_t channels, int64_t tile_rows, int64_t tiles_w, float* v, int64_t xi_stride,
                         int64_t row);
  // Element (xi, o, t) = (A g A^T)[xi / 4][xi % 4] for the 2x2 tile g at rows 2th, 2th + 1 and
  // columns 2tw, 2tw + 1 of grad[o * plane + y * out_w + x] (zero at rows >= rows and columns >=
  // out_w), A = [1 0; 1 1; 1 -1; 0 -1]: grad_output's side of the weight gradient.
  void (*winograd_gradient)(const float* grad, int64_t plane, int64_t rows, int64_t out_w, int64_t channels,
                            int64_t tile_rows, int64_t tiles_w, float* q, int64_t xi_stride, int64_t row);
  // out[o * out_h * out_w + (2th + i) * out_w + 2tw + j] = bias[o] (0 if null) + (A^T m A)[i][j]
  // for every output inside out_h x out_w (out points at the block's first tile row).
  void (*winograd_output)(const float* m, int64_t xi_stride, int64_t row, int64_t channels, int64_t tile_rows,
                          int64_t tiles_w, const float* bias, float* out, int64_t out_plane, int64_t out_h,
                          int64_t out_w);
};

}  // namespace fastnn::cpu
