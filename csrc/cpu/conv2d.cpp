// conv2d as GEMMs over im2col column matrices, one (image, group) at a time. With
// R = channels_per_group * KH * KW and P = out_h * out_w:
//   forward          Y_g[C_out/groups, P] = W_g[C_out/groups, R] @ col[R, P]
//   backward-data    dcol[R, P] = W_g^T @ dY_g, scattered back into the input by col2im
//   backward-weight  dW_g += dY_g @ col^T, summed over the batch
// A 1x1, stride-1, unpadded convolution skips im2col: the input image already is col.
// Otherwise col is built for a block of output rows at a time, about the size of L2.
// 3x3 stride-1 layers with enough channels take Winograd F(2x2, 3x3) instead (below).
// With at least as many images as threads, each thread takes whole images with its own
// column buffer and gemm runs single-threaded inside; with fewer, images go one at a time
// and gemm and im2col split each image across the threads.
// Few taps (R <= kDirectMaxTaps, e.g. a first layer with one input channel) take direct
// kernels for forward and backward instead, both gradients from one pass over grad_output
// (cpu/simd/conv2d_simd.h).
#include "fastnn/conv2d.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"
#include "fastnn/gemm.h"

namespace fastnn::cpu {
namespace {

// As in gemm.cpp: below ~2^21 multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelFlops = int64_t(1) << 21;
// im2col/col2im elements (128 KB) worth handing to another thread.
constexpr int64_t kParallelCopy = int64_t(1) << 15;
// A block of col (1 MB, about L2): a whole col of 64 channels x 3x3 x 56x56 outputs is 7 MB,
// written to memory and read back for every image. gemm repacks the weight for every block, so
// fewer, longer blocks pay: 128 -> 256 channels 3x3 stride 2 on 14x14 outputs (a 1.2 MB weight)
// is 12% faster with its whole 903 KB col in one block than in two of 512 KB.
constexpr int64_t kColumnBlock = int64_t(1) << 18;
// With K = R = 9 a GEMM does 9 FMAs per C element it packs and stores; a direct kernel keeps
// 16 output channels in registers and loads one input vector per 16 FMAs, whatever R.
constexpr int64_t kDirectMaxTaps = 32;

struct Geometry {
  int64_t group_in, group_out;  // channels per group
  int64_t col_rows;             // R = group_in * KH * KW
  int64_t in_plane, out_plane;  // H * W and P = out_h * out_w
  bool pointwise;               // 1x1, stride 1, no padding: col is the input itself
  int64_t block_rows;           // output rows per block of col (all of them when pointwise)
};

Geometry geometry(const Conv2dShape& s) {
  Geometry g;
  g.group_in = s.in_channels / s.groups;
  g.group_out = s.out_channels / s.groups;
  g.col_rows = g.group_in * s.kernel_h * s.kernel_w;
  g.in_plane = s.in_h * s.in_w;
  g.out_plane = s.out_h * s.out_w;
  g.pointwise = s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
             s.pad_w == 0 && s.out_h == s.in_h && s.out_w == s.in_w;
  g.block_rows = g.pointwise ? s.out_h
                             : std::clamp<int64_t>(kColumnBlock / std::max<int64_t>(1, g.col_rows * s.out_w), 1,
                                                   std::max<int64_t>(1, s.out_h));
  return g;
}

// How many slices of the batch run in parallel, each on one thread with its own buffers: one
// when there are fewer images than threads (gemm then parallelizes each image instead).
int64_t batch_slices(int64_t batch, int64_t flops_per_image) {
  const int64_t threads = num_threads();
  if (batch < threads) return 1;
  return std::clamp<int64_t>(batch * flops_per_image / kParallelFlops, 1, threads);
}

struct Range {
  int64_t begin, end;
};

// The outputs o in [begin, end) whose input index o * stride + offset lies in [0, size);
// the others read padding.
Range inside(int64_t offset, int64_t stride, int64_t size, int64_t outputs) {
  const int64_t begin = std::min(outputs, offset >= 0 ? 0 : (stride - 1 - offset) / stride);
  const int64_t end = offset > size - 1 ? 0 : (size - 1 - offset) / stride + 1;
  return {begin, std::clamp(end, begin, outputs)};
}

// Output rows [begin, end) of the image.
struct Rows {
  int64_t begin, end;
};

// col[(c * KH + kh) * KW + kw, (oh - rows.begin) * out_w + ow] = image[c, oh * stride + kh * dilation - pad, ...]
// for the output rows oh in `out_rows`, zero where that falls in the padding. col's rows are
// split across threads (serial inside a parallel region).
void im2col(const Conv2dShape& s, const float* image, int64_t channels, Rows out_rows, float* col) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t kernel = s.kernel_h * s.kernel_w, plane = (out_rows.end - out_rows.begin) * s.out_w;
  parallel_for(channels * kernel, std::max<int64_t>(1, kParallelCopy / std::max<int64_t>(1, plane)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t r = begin; r < end; ++r) {
                   const int64_t c = r / kernel, kh = r % kernel / s.kernel_w, kw = r % s.kernel_w;
                   float* dst = col + r * plane;
                   const int64_t row_offset = kh * s.dilation_h - s.pad_h;
                   const Range all_rows = inside(row_offset, s.stride_h, s.in_h, s.out_h);
                   const Range rows = {std::clamp(all_rows.begin, out_rows.begin, out_rows.end) - out_rows.begin,
                                       std::clamp(all_rows.end, out_rows.begin, out_rows.end) - out_rows.begin};
                   std::fill(dst, dst + rows.begin * s.out_w, 0.0f);
                   if (rows.begin < rows.end)
                     kernels.gather_rows(image + (c * s.in_h + (out_rows.begin + rows.begin) * s.stride_h + row_offset) * s.in_w,
                                         s.in_w, s.stride_h * s.in_w, rows.end - rows.begin, kw * s.dilation_w - s.pad_w,
                                         s.stride_w, s.out_w, dst + rows.begin * s.out_w, s.out_w);
                   std::fill(dst + rows.end * s.out_w, dst + plane, 0.0f);
                 }
               });
}

// The adjoint of im2col: every col element is added to the input pixel it was read from
// (padding reads are dropped); the caller zeroes the image first. Split by channel, so no two
// threads add to one pixel.
void col2im(const Conv2dShape& s, const float* col, int64_t channels, Rows out_rows, float* image) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t kernel = s.kernel_h * s.kernel_w, plane = (out_rows.end - out_rows.begin) * s.out_w;
  parallel_for(channels, std::max<int64_t>(1, kParallelCopy / std::max<int64_t>(1, kernel * plane)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t c = begin; c < end; ++c) {
                   float* dst = image + c * s.in_h * s.in_w;
                   for (int64_t k = 0; k < kernel; ++k) {
                     const int64_t kh = k / s.kernel_w, kw = k % s.kernel_w;
                     const float* src = col + (c * kernel + k) * plane;
                     const int64_t row_offset = kh * s.dilation_h - s.pad_h, col_offset = kw * s.dilation_w - s.pad_w;
                     const Range all_rows = inside(row_offset, s.stride_h, s.in_h, s.out_h);
                     const int64_t row_begin = std::clamp(all_rows.begin, out_rows.begin, out_rows.end);
                     const int64_t row_end = std::clamp(all_rows.end, out_rows.begin, out_rows.end);
                     if (row_begin < row_end)
                       kernels.scatter_add_rows(src + (row_begin - out_rows.begin) * s.out_w, s.out_w, row_end - row_begin,
                                                s.out_w, dst + (row_begin * s.stride_h + row_offset) * s.in_w, s.in_w,
                                                s.stride_h * s.in_w, col_offset, s.stride_w);
                   }
                 }
               });
}

// The column block of one image's group for output rows `rows` (row stride: their
// out_w * count): the input itself on the pointwise path, else im2col.
const float* columns(const Conv2dShape& s, const Geometry& g, const float* image, Rows rows, float* buffer) {
  if (g.pointwise) return image;
  im2col(s, image, g.group_in, rows, buffer);
  return buffer;
}

std::unique_ptr<float[]> column_buffer(const Conv2dShape& s, const Geometry& g) {
  return std::unique_ptr<float[]>(g.pointwise ? nullptr : new float[g.col_rows * g.block_rows * s.out_w]);
}

// Each group's weight packed once as gemm's A (W_g, or W_g^T for backward-data) for every
// image and block: a 1.2 MB weight (256 x 128 x 3x3) costs ~300K packing stores a call. A null
// weight (a gradient not asked for) packs nothing.
struct PackedWeight {
  int64_t rows, cols, group_size;
  std::vector<float> data;

  PackedWeight(const Conv2dShape& s, const Geometry& g, const float* weight, bool transposed)
      : rows(transposed ? g.col_rows : g.group_out), cols(transposed ? g.group_out : g.col_rows),
        group_size(packed_a_size(rows, cols)), data(weight ? s.groups * group_size : 0) {
    for (int64_t group = 0; weight && group < s.groups; ++group)
      pack_a(rows, cols, weight + group * g.group_out * g.col_rows, transposed ? 1 : g.col_rows,
             transposed ? g.col_rows : 1, data.data() + group * group_size);
  }

  const float* group(int64_t group) const { return data.data() + group * group_size; }
};

// Calls body(rows, first_column, columns) on each block of output rows, first_column being the
// first's offset in the output plane.
template <class Body>
void over_row_blocks(const Conv2dShape& s, const Geometry& g, Body&& body) {
  for (int64_t begin = 0; begin < s.out_h; begin += g.block_rows) {
    const Rows rows{begin, std::min(s.out_h, begin + g.block_rows)};
    body(rows, begin * s.out_w, (rows.end - begin) * s.out_w);
  }
}

bool use_direct(const Conv2dShape& s, const Geometry& g) {
  return s.groups == 1 && s.stride_w == 1 && g.col_rows <= kDirectMaxTaps;
}

// One image's input planes in a zero-padded buffer, the layout of the direct kernels: tap
// (c, kh, kw) of output (oh, ow) is data[offsets[tap] + oh * row_stride + ow]. Rows and columns
// cover every read of the unpadded output (the implied bottom/right zeros included), plus
// `width` floats of slack for the last vector's overrun. The padding is zeroed once; each image
// overwrites only the interior.
struct PaddedImage {
  int64_t rows, cols, row_stride;
  std::vector<int64_t> offsets;
  std::vector<float> data;

  PaddedImage(const Conv2dShape& s, int64_t width)
      : rows(std::max(s.pad_h + s.in_h, (s.out_h - 1) * s.stride_h + (s.kernel_h - 1) * s.dilation_h + 1)),
        cols(std::max(s.pad_w + s.in_w, s.out_w + (s.kernel_w - 1) * s.dilation_w)),
        row_stride(s.stride_h * cols),
        data(s.in_channels * rows * cols + width, 0.0f) {
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t kh = 0; kh < s.kernel_h; ++kh)
        for (int64_t kw = 0; kw < s.kernel_w; ++kw)
          offsets.push_back((c * rows + kh * s.dilation_h) * cols + kw * s.dilation_w);
  }

  const float* fill(const Conv2dShape& s, const float* image) {
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t h = 0; h < s.in_h; ++h)
        std::copy_n(image + (c * s.in_h + h) * s.in_w, s.in_w, data.data() + (c * rows + s.pad_h + h) * cols + s.pad_w);
    return data.data();
  }

  // The inverse of fill: the interior back out as planes [in_channels, in_h, in_w].
  void copy_interior(const Conv2dShape& s, float* image) const {
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t h = 0; h < s.in_h; ++h)
        std::copy_n(data.data() + (c * rows + s.pad_h + h) * cols + s.pad_w, s.in_w, image + (c * s.in_h + h) * s.in_w);
  }
};

// Images per thread: enough multiply-adds to pay for a parallel region.
int64_t images_per_thread(const Conv2dShape& s, int64_t taps) {
  return std::max<int64_t>(1, kParallelFlops / std::max<int64_t>(1, s.out_channels * s.out_h * s.out_w * taps));
}

void direct_forward(const Conv2dShape& s, const Geometry& g, const float* input, const float* weight,
                    const float* bias, float* output) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t block = kernels.forward_channels, taps = g.col_rows;
  const int64_t blocks = (s.out_channels + block - 1) / block;
  // weight as [block][tap][channel in block], bias as [block][channel in block], zero-padded.
  std::vector<float> packed_weight(blocks * taps * block, 0.0f), packed_bias(blocks * block, 0.0f);
  for (int64_t o = 0; o < s.out_channels; ++o) {
    for (int64_t r = 0; r < taps; ++r) packed_weight[(o / block * taps + r) * block + o % block] = weight[o * taps + r];
    if (bias) packed_bias[o] = bias[o];
  }
  parallel_for(s.batch, images_per_thread(s, g.col_rows), [&](int64_t begin, int64_t end) {
    PaddedImage padded(s, kernels.width);
    for (int64_t n = begin; n < end; ++n) {
      kernels.direct_forward(padded.fill(s, input + n * s.in_channels * g.in_plane), padded.row_stride,
                             padded.offsets.data(), taps, packed_weight.data(), packed_bias.data(), s.out_channels,
                             output + n * s.out_channels * g.out_plane, g.out_plane, s.out_h, s.out_w);
    }
  });
}

// Winograd F(2x2, 3x3) (Lavin & Gray, 2016) for 3x3 stride-1 layers: each 2x2 output tile is
// A^T [(G g G^T) .* (B^T d B)] A over its 4x4 input tile d, so per tile the 16 elementwise
// products (one GEMM [C_out, C_in] @ [C_in, tiles] per element xi) replace 36 multiply-adds:
// 2.25x fewer flops, while the transforms cost ~50 adds per tile and channel. 64 -> 64 channels
// on 56x56: 231 MFLOP of GEMM per image as im2col, 103 MFLOP as Winograd.
// Both transformed blocks (16 x channels x tiles each) share 1.5 MB, inside a 2 MB L2: at 6 MB
// they went out to L3 between the transforms and the products (32 -> 64 channels on 26x26, 1
// thread: forward 16.7 -> 13.7 ms, backward-data 24.3 -> 19.9 ms). Half or twice as much was
// slower on all three passes (5 alternated pairs each: forward +9% / +21%, backward-weight +6% / +37%).
constexpr int64_t kWinogradBlockFloats = int64_t(3) << 17;
// Fewer input channels: the GEMMs' reduction is too short to pay for the transforms.
constexpr int64_t kWinogradMinChannels = 8;

bool use_winograd(const Conv2dShape& s) {
  return s.groups == 1 && s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.dilation_h == 1 && s.dilation_w == 1 && s.pad_h <= 2 && s.pad_w <= 2 &&
         std::min(s.in_channels, s.out_channels) >= kWinogradMinChannels;
}

// The forward products (U @ V per xi) run as direct_forward with one tap per input channel over
// the transformed block (channel c's row at c * row): V is read as the transform wrote it, where
// gemm packed it for a reduction of only 32 or 64 channels (32 -> 64 channels on 26x26, 1 thread:
// forward 15.6 -> 14.0 ms, backward-data 21.1 -> 19.3 ms).
std::vector<int64_t> row_offsets(int64_t channels, int64_t row) {
  std::vector<int64_t> offsets(channels);
  for (int64_t c = 0; c < channels; ++c) offsets[c] = c * row;
  return offsets;
}

// Scratch of the Winograd passes, kept by each thread from call to call: a fresh multi-MB vector
// per call costs a page fault and a page clearing per 4 KiB every time (page faults and clearing
// were ~15% of a demo training step's profile). Holds whatever the last user left in it.
float* winograd_scratch(int slot, int64_t floats) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& buffer = buffers[slot];
  if (static_cast<int64_t>(buffer.size()) < floats) buffer = std::vector<float>(floats);
  return buffer.data();
}

// Tiles and buffer sizes of one Winograd pass (see winograd_input in conv2d_simd.h).
// A block is either tile rows of one image or, when images are small, whole images: their tiles
// side by side make longer products (a 24x24 output has only 144 tiles).
struct WinogradPlan {
  int64_t tiles_h, tiles_w, block_rows;  // tile rows per block (all when it holds whole images)
  int64_t block_images;                  // images per block
  int64_t row;                           // a transformed block's row: its tiles plus a vector of slack

  // Floats from one xi's array to the next, a cache line more than its channels' rows: the
  // transforms read or write all 16 at once, and 32 or 64 rows of 160 floats put the 16 in one L1
  // set (a multiple of 4 KiB apart, 12 ways), where each vector missed.
  int64_t xi_stride(int64_t channels) const { return channels * row + 16; }
};

WinogradPlan winograd_plan(const Conv2dShape& s, int64_t width) {
  WinogradPlan p;
  p.tiles_h = (s.out_h + 1) / 2, p.tiles_w = (s.out_w + 1) / 2;
  const int64_t rows_fit =
      kWinogradBlockFloats / (16 * (s.in_channels + s.out_channels) * std::max<int64_t>(1, p.tiles_w));
  p.block_rows = std::clamp<int64_t>(rows_fit, 1, std::max<int64_t>(1, p.tiles_h));
  p.block_images = std::clamp<int64_t>(rows_fit / std::max<int64_t>(1, p.tiles_h), 1, std::max<int64_t>(1, s.batch));
  p.row = p.block_images * p.block_rows * p.tiles_w + width;
  return p;
}

// For images [begin, end) block by block: transform(n, first_tile_row, tile_rows, offset) for
// each image part of the block (offset: its first tile's column in the transformed arrays, in
// order, so a part's overrun is overwritten by the next), then multiply(tiles in the block), then
// finish(n, first_tile_row, tile_rows, offset) for each part.
template <class Transform, class Multiply, class Finish>
void over_winograd_blocks(const Conv2dShape& s, const WinogradPlan& p, int64_t begin, int64_t end,
                          Transform&& transform, Multiply&& multiply, Finish&& finish) {
  const int64_t image_tiles = p.tiles_h * p.tiles_w;
  for (int64_t n0 = begin; n0 < end; n0 += p.block_images) {
    const int64_t n1 = std::min(end, n0 + p.block_images);
    for (int64_t tb = 0; tb < p.tiles_h; tb += p.block_rows) {
      const int64_t rows = std::min(p.block_rows, p.tiles_h - tb);
      for (int64_t n = n0; n < n1; ++n) transform(n, tb, rows, (n - n0) * image_tiles);
      multiply((n1 - n0) * rows * p.tiles_w);
      for (int64_t n = n0; n < n1; ++n) finish(n, tb, rows, (n - n0) * image_tiles);
    }
  }
}

void winograd_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                      float* output) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t in = s.in_channels, out = s.out_channels, out_plane = s.out_h * s.out_w;
  // (G g G^T)[xi / 4][xi % 4], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1], as direct_forward's weight for
  // each xi: u[((xi * blocks + o / block) * in + c) * block + o % block], zero-padded to whole blocks.
  const int64_t block = kernels.forward_channels, blocks = (out + block - 1) / block;
  std::vector<float> u(16 * blocks * in * block, 0.0f), zeros(blocks * block, 0.0f);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; ++c) {
      const float* g = weight + (o * in + c) * 9;
      float gg[4][3];
      for (int j = 0; j < 3; ++j) {
        gg[0][j] = g[j];
        gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        gg[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {
        const float row[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                              0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
        for (int j = 0; j < 4; ++j) u[(((4 * i + j) * blocks + o / block) * in + c) * block + o % block] = row[j];
      }
    }
  const WinogradPlan p = winograd_plan(s, kernels.width);
  const int64_t row = p.row;
  const std::vector<int64_t> channel_rows = row_offsets(in, row);
  parallel_for(s.batch, images_per_thread(s, 9 * in), [&](int64_t begin, int64_t end) {
    float* v = winograd_scratch(0, 16 * p.xi_stride(in));
    float* m = winograd_scratch(1, 16 * p.xi_stride(out));
    over_winograd_blocks(s, p, begin, end, [&](int64_t n, int64_t tb, int64_t rows, int64_t offset) {
      kernels.winograd_input(input + n * in * s.in_h * s.in_w, s.in_h, s.in_w, 2 * tb - s.pad_h, -s.pad_w, in, rows,
                             p.tiles_w, v + offset, p.xi_stride(in), row);
    }, [&](int64_t tiles) {
      for (int64_t xi = 0; xi < 16; ++xi)
        kernels.direct_forward(v + xi * p.xi_stride(in), 0, channel_rows.data(), in, u.data() + xi * blocks * in * block,
                               zeros.data(), out, m + xi * p.xi_stride(out), row, 1, tiles);
    }, [&](int64_t n, int64_t tb, int64_t rows, int64_t offset) {
      kernels.winograd_output(m + offset, p.xi_stride(out), row, out, rows, p.tiles_w, bias,
                              output + n * out * out_plane + 2 * tb * s.out_w, out_plane, s.out_h - 2 * tb, s.out_w);
    });
  });
}

// grad_input of a 3x3 stride-1 layer is the convolution of grad_output with the kernel turned
// 180 degrees and its channel axes swapped, padded 2 - pad: a forward Winograd too.
void winograd_backward_data(const Conv2dShape& s, const float* grad_output, const float* weight,
                            float* grad_input) {
  Conv2dShape t = s;
  t.in_channels = s.out_channels, t.in_h = s.out_h, t.in_w = s.out_w;
  t.out_channels = s.in_channels, t.out_h = s.in_h, t.out_w = s.in_w;
  t.pad_h = 2 - s.pad_h, t.pad_w = 2 - s.pad_w;
  std::vector<float> turned(s.out_channels * s.in_channels * 9);
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t k = 0; k < 9; ++k) turned[(c * s.out_channels + o) * 9 + 8 - k] = weight[(o * s.in_channels + c) * 9 + k];
  winograd_forward(t, grad_output, turned.data(), nullptr, grad_input);
}

// Splits the batch into `slices` run in parallel, calling body(first_image, end_image,
// slice_grad_weight). Each slice sums its grad_weight into its own buffer (slice 0 into
// grad_weight, which may be null) and the buffers are added in a fixed order, so the result
// does not depend on scheduling.
template <class Body>
void over_batch_slices(const Conv2dShape& s, const Geometry& g, int64_t slices, float* grad_weight, Body&& body) {
  const int64_t weight_size = s.out_channels * g.col_rows;
  std::vector<float> partial_weights(grad_weight ? (slices - 1) * weight_size : 0, 0.0f);
  if (grad_weight) std::fill(grad_weight, grad_weight + weight_size, 0.0f);
  parallel_for(slices, 1, [&](int64_t first, int64_t last) {
    for (int64_t slice = first; slice < last; ++slice)
      body(s.batch * slice / slices, s.batch * (slice + 1) / slices,
           slice == 0 || !grad_weight ? grad_weight : partial_weights.data() + (slice - 1) * weight_size);
  });
  if (grad_weight && slices > 1) {
    parallel_for(weight_size, kParallelCopy, [&](int64_t begin, int64_t end) {
      for (int64_t slice = 1; slice < slices; ++slice) {
        const float* partial = partial_weights.data() + (slice - 1) * weight_size;
        for (int64_t i = begin; i < end; ++i) grad_weight[i] += partial[i];
      }
    });
  }
}

// grad_weight of a 3x3 stride-1 layer by the same transforms: with V = B^T d B and
// Q = A dY A^T per tile, dL/dU = sum over tiles of Q .* V (16 GEMMs [C_out, tiles] @ [tiles, C_in])
// and grad_weight = G^T (dL/dU) G.
void winograd_backward_weight(const Conv2dShape& s, const Geometry& g, const float* grad_output, const float* input,
                              float* grad_weight) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t in = s.in_channels, out = s.out_channels;
  const WinogradPlan p = winograd_plan(s, kernels.width);
  const int64_t row = p.row, slices = batch_slices(s.batch, 2 * out * g.out_plane * g.col_rows);
  over_batch_slices(s, g, slices, grad_weight, [&](int64_t begin, int64_t end, float* slice_grad_weight) {
    float* v = winograd_scratch(0, 16 * p.xi_stride(in));
    float* q = winograd_scratch(1, 16 * p.xi_stride(out));
    std::vector<float> du(16 * out * in, 0.0f);
    over_winograd_blocks(s, p, begin, end, [&](int64_t n, int64_t tb, int64_t rows, int64_t offset) {
      kernels.winograd_input(input + n * in * s.in_h * s.in_w, s.in_h, s.in_w, 2 * tb - s.pad_h, -s.pad_w, in, rows,
                             p.tiles_w, v + offset, p.xi_stride(in), row);
      kernels.winograd_gradient(grad_output + n * out * g.out_plane + 2 * tb * s.out_w, g.out_plane, s.out_h - 2 * tb,
                                s.out_w, out, rows, p.tiles_w, q + offset, p.xi_stride(out), row);
    }, [&](int64_t tiles) {
      for (int64_t xi = 0; xi < 16; ++xi)
        gemm(out, in, tiles, 1.0f, q + xi * p.xi_stride(out), row, 1, v + xi * p.xi_stride(in), 1, row, 1.0f,
             du.data() + xi * out * in, in);
    }, [](int64_t, int64_t, int64_t, int64_t) {});
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < in; ++c) {
        float x[4][4], r[3][4];
        for (int xi = 0; xi < 16; ++xi) x[xi / 4][xi % 4] = du[(xi * out + o) * in + c];
        for (int j = 0; j < 4; ++j) {
          r[0][j] = x[0][j] + 0.5f * (x[1][j] + x[2][j]);
          r[1][j] = 0.5f * (x[1][j] - x[2][j]);
          r[2][j] = 0.5f * (x[1][j] + x[2][j]) + x[3][j];
        }
        float* w = slice_grad_weight + (o * in + c) * 9;
        for (int a = 0; a < 3; ++a) {
          w[3 * a + 0] += r[a][0] + 0.5f * (r[a][1] + r[a][2]);
          w[3 * a + 1] += 0.5f * (r[a][1] - r[a][2]);
          w[3 * a + 2] += 0.5f * (r[a][1] + r[a][2]) + r[a][3];
        }
      }
  });
}

// Sum of values[0:count] in kLanes interleaved partial sums: lane-wise adds vectorize, where one
// running sum is a chain of dependent adds (the first layer's bias gradient, 64x32x26x26, 1 thread:
// 0.9 ms, more than its weight gradient).
float plane_sum(const float* values, int64_t count) {
  constexpr int64_t kLanes = 32;
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] += values[i + l];
  float sum = 0.0f;
  for (; i < count; ++i) sum += values[i];
  for (float lane : lanes) sum += lane;
  return sum;
}

// grad_input and grad_weight (either may be null) image by image, each image's grad_input in a
// padded buffer of the input's layout whose interior is copied out, grad_weight in vector lanes
// added up once per slice.
void direct_backward(const Conv2dShape& s, const Geometry& g, const float* grad_output, const float* input,
                     const float* weight, float* grad_input, float* grad_weight) {
  const Conv2dKernels& kernels = *isa().conv2d;
  const int64_t slices = batch_slices(s.batch, 2 * s.out_channels * g.out_plane * g.col_rows);
  const int64_t weight_size = s.out_channels * g.col_rows;
  // weight's rows zero-padded to whole tap blocks of the kernel's input-gradient sums.
  const int64_t padded_taps = (g.col_rows + kernels.data_taps - 1) / kernels.data_taps * kernels.data_taps;
  std::vector<float> padded_weight(grad_input ? s.out_channels * padded_taps : 0, 0.0f);
  for (int64_t o = 0; grad_input && o < s.out_channels; ++o)
    std::copy_n(weight + o * g.col_rows, g.col_rows, padded_weight.data() + o * padded_taps);
  over_batch_slices(s, g, slices, grad_weight, [&](int64_t begin, int64_t end, float* slice_grad_weight) {
    PaddedImage padded(s, kernels.width), padded_grad(s, kernels.width);
    const int64_t plane = padded.rows * padded.cols;
    std::vector<float> tap_grad(grad_input ? g.col_rows * (2 * plane + kernels.width) : 0, 0.0f);
    std::vector<float> weight_lanes(grad_weight ? weight_size * kernels.width : 0, 0.0f);
    for (int64_t n = begin; n < end; ++n) {
      kernels.direct_backward(grad_weight ? padded.fill(s, input + n * s.in_channels * g.in_plane) : nullptr,
                              padded.row_stride, plane, padded.offsets.data(), g.col_rows,
                              grad_output + n * s.out_channels * g.out_plane,
                              n + 1 < end ? grad_output + (n + 1) * s.out_channels * g.out_plane : nullptr,
                              s.out_channels, s.out_h, s.out_w, padded_weight.data(),
                              grad_weight ? weight_lanes.data() : nullptr, grad_input ? padded_grad.data.data() : nullptr,
                              tap_grad.data());
      if (grad_input) padded_grad.copy_interior(s, grad_input + n * s.in_channels * g.in_plane);
    }
    for (int64_t i = 0; grad_weight && i < weight_size; ++i)
      for (int64_t l = 0; l < kernels.width; ++l) slice_grad_weight[i] += weight_lanes[i * kernels.width + l];
  });
}

}  // namespace

void conv2d(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) {
  const Geometry g = geometry(s);
  if (use_direct(s, g)) return direct_forward(s, g, input, weight, bias, output);
  if (use_winograd(s)) return winograd_forward(s, input, weight, bias, output);
  const int64_t slices = batch_slices(s.batch, s.out_channels * g.out_plane * g.col_rows);
  const PackedWeight packed(s, g, weight, false);
  parallel_for(slices, 1, [&](int64_t first, int64_t last) {
    const auto buffer = column_buffer(s, g);
    for (int64_t n = s.batch * first / slices; n < s.batch * last / slices; ++n)
      for (int64_t group = 0; group < s.groups; ++group) {
        const float* x = input + (n * s.in_channels + group * g.group_in) * g.in_plane;
        float* y = output + (n * s.out_channels + group * g.group_out) * g.out_plane;
        if (bias) {
          for (int64_t o = 0; o < g.group_out; ++o)
            std::fill(y + o * g.out_plane, y + (o + 1) * g.out_plane, bias[group * g.group_out + o]);
        }
        over_row_blocks(s, g, [&](Rows rows, int64_t first_column, int64_t columns_count) {
          gemm_packed_a(g.group_out, columns_count, g.col_rows, 1.0f, packed.group(group),
                        columns(s, g, x, rows, buffer.get()), columns_count, 1, bias ? 1.0f : 0.0f, y + first_column,
                        g.out_plane);
        });
      }
  });
}

void conv2d_backward(const Conv2dShape& s, const float* grad_output, const float* input, const float* weight,
                     float* grad_input, float* grad_weight, float* grad_bias) {
  const Geometry g = geometry(s);
  if (grad_bias) {
    const int64_t per_channel = s.batch * g.out_plane;
    parallel_for(s.out_channels, std::max<int64_t>(1, kParallelCopy / std::max<int64_t>(1, per_channel)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t o = begin; o < end; ++o) {
                     float sum = 0.0f;
                     for (int64_t n = 0; n < s.batch; ++n)
                       sum += plane_sum(grad_output + (n * s.out_channels + o) * g.out_plane, g.out_plane);
                     grad_bias[o] = sum;
                   }
                 });
  }
  if (use_direct(s, g)) return direct_backward(s, g, grad_output, input, weight, grad_input, grad_weight);
  if (grad_weight && use_winograd(s)) {
    winograd_backward_weight(s, g, grad_output, input, grad_weight);
    grad_weight = nullptr;
  }
  if (grad_input && use_winograd(s)) {
    winograd_backward_data(s, grad_output, weight, grad_input);
    grad_input = nullptr;
  }
  if (!grad_input && !grad_weight) return;

  const int64_t slices = batch_slices(s.batch, 2 * s.out_channels * g.out_plane * g.col_rows);
  const PackedWeight packed_transposed(s, g, grad_input ? weight : nullptr, true);
  over_batch_slices(s, g, slices, grad_weight, [&](int64_t begin, int64_t end, float* slice_grad_weight) {
    const auto buffer = column_buffer(s, g);
    for (int64_t n = begin; n < end; ++n)
      for (int64_t group = 0; group < s.groups; ++group) {
        const int64_t in_offset = (n * s.in_channels + group * g.group_in) * g.in_plane;
        const float* dy = grad_output + (n * s.out_channels + group * g.group_out) * g.out_plane;
        if (grad_input && g.pointwise) {
          gemm_packed_a(g.group_in, g.in_plane, g.group_out, 1.0f, packed_transposed.group(group), dy, g.out_plane, 1,
                        0.0f, grad_input + in_offset, g.in_plane);
        } else if (grad_input) {
          std::fill(grad_input + in_offset, grad_input + in_offset + g.group_in * g.in_plane, 0.0f);
        }
        over_row_blocks(s, g, [&](Rows rows, int64_t first_column, int64_t columns_count) {
          if (grad_weight) {
            gemm(g.group_out, g.col_rows, columns_count, 1.0f, dy + first_column, g.out_plane, 1,
                 columns(s, g, input + in_offset, rows, buffer.get()), 1, columns_count, 1.0f,
                 slice_grad_weight + group * g.group_out * g.col_rows, g.col_rows);
          }
          if (grad_input && !g.pointwise) {
            gemm_packed_a(g.col_rows, columns_count, g.group_out, 1.0f, packed_transposed.group(group),
                          dy + first_column, g.out_plane, 1, 0.0f, buffer.get(), columns_count);
            col2im(s, buffer.get(), g.group_in, rows, grad_input + in_offset);
          }
        });
      }
  });
}

}  // namespace fastnn::cpu
