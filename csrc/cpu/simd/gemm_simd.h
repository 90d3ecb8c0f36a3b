// The GEMM register micro-kernel, compiled once per ISA (see CMakeLists.txt).
#pragma once
#include <cstdint>

namespace fastnn::cpu {

// C[0:rows, 0:cols] = alpha * sum_k A(i, k) * b[k*b_row_stride + j] + beta * C, with
// A(i, k) = a[i*a_row_stride + k*a_col_stride]: a panel from pack_a (a_row_stride 1, a_col_stride
// mr) or A read in place; B a panel from pack_b (b_row_stride nr) or B's rows read in place, which
// the kernel reads whole vectors of: cols must then be a multiple of the vector width. beta == 0:
// C is not read.
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
                             int64_t b_row_stride, float* c, int64_t ldc, int64_t rows, int64_t cols, float alpha,
                             float beta);

struct GemmKernels {
  int64_t mr, nr;  // register tile: MR rows of A by NR columns of B
  int64_t width;   // floats per vector
  // micro[v - 1] computes up to v * width columns, so a narrow last panel (the 4 columns past
  // 4 x 48 of a 14x14 output plane) costs a third of a whole one. Past nr / width vectors the
  // entries repeat the widest.
  MicroKernel micro[3];
  // dst[k*mr + i] = A(i, k) for i < rows, k < kc, zero-padded to mr rows, with
  // A(i, k) = a[i*row_stride + k*col_stride].
  void (*pack_a)(const float* a, int64_t row_stride, int64_t col_stride, int64_t rows, int64_t kc, float* dst);
  // dst[k*nr + j] = B(k, j) for j < cols, k < kc, zero-padded to nr columns.
  void (*pack_b)(const float* b, int64_t row_stride, int64_t col_stride, int64_t cols, int64_t kc, float* dst);
  // A wide_rows x wide_cols tile for small products that read both A and B in place (any row
  // count per tile, B's rows in whole vectors); wide is null where the ISA has none.
  int64_t wide_rows, wide_cols;
  MicroKernel wide;
};

}  // namespace fastnn::cpu
