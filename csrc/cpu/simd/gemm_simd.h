// The GEMM register micro-kernel, compiled once per ISA (see CMakeLists.txt).
#pragma once
#include <cstdint>

namespace fastnn::cpu {

struct GemmKernels {
  int64_t mr, nr;  // register tile: MR rows of A by NR columns of B
  // C[0:rows, 0:cols] = alpha * sum_k A(i, k) * b_panel[k*nr + j] + beta * C, with
  // A(i, k) = a[i*a_row_stride + k*a_col_stride]: a panel from pack_a (a_row_stride 1, a_col_stride
  // mr) or A read in place. The B panel is packed and zero-padded to nr; beta == 0: C is not read.
  void (*micro)(int64_t kc, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b_panel,
                float* c, int64_t ldc, int64_t rows, int64_t cols, float alpha, float beta);
  // The same for at most narrow_cols columns (one vector; B panel still nr wide): a third or a
  // half of micro's FMAs on a narrow last panel, e.g. the 4 columns past 4 x 48 of a 14x14
  // output plane.
  int64_t narrow_cols;
  void (*micro_narrow)(int64_t kc, const float* a, int64_t a_row_stride, int64_t a_col_stride,
                       const float* b_panel, float* c, int64_t ldc, int64_t rows, int64_t cols, float alpha,
                       float beta);
  // dst[k*mr + i] = A(i, k) for i < rows, k < kc, zero-padded to mr rows, with
  // A(i, k) = a[i*row_stride + k*col_stride].
  void (*pack_a)(const float* a, int64_t row_stride, int64_t col_stride, int64_t rows, int64_t kc, float* dst);
  // dst[k*nr + j] = B(k, j) for j < cols, k < kc, zero-padded to nr columns.
  void (*pack_b)(const float* b, int64_t row_stride, int64_t col_stride, int64_t cols, int64_t kc, float* dst);
};

}  // namespace fastnn::cpu
