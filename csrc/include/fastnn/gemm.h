// Dense matrix products on the CPU. All matrices are float32; sizes and strides in elements.
#pragma once
#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// C[M,N] = alpha * A[M,K] @ B[K,N] + beta * C, with A(i,k) = a[i*a_row_stride + k*a_col_stride]
// and B(k,j) = b[k*b_row_stride + j*b_col_stride]: transposed operands are just other strides.
// C is row-major with leading dimension ldc. beta == 0 means C is not read.
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_row_stride,
          int64_t a_col_stride, const float* b, int64_t b_row_stride, int64_t b_col_stride, float beta,
          float* c, int64_t ldc);

// A packed once for many products (a conv weight over a batch of images): packed_a_size floats
// for pack_a, then gemm_packed_a is gemm with that A.
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(int64_t M, int64_t K, const float* a, int64_t a_row_stride, int64_t a_col_stride, float* packed);
void gemm_packed_a(int64_t M, int64_t N, int64_t K, float alpha, const float* a_packed, const float* b,
                   int64_t b_row_stride, int64_t b_col_stride, float beta, float* c, int64_t ldc);

// c[batch, M, N] = a[batch, M, K] @ b[batch, M, N], all contiguous; b_batch_stride 0 shares b.
void matmul(int64_t batch, int64_t M, int64_t N, int64_t K, const float* a, const float* b,
            int64_t b_batch_stride, float* c);
// Gradients of matmul; grad_a or grad_b may be null to skip. With b_batch_stride 0, grad_b is
// [K, N] and sums over the batch.
void matmul_backward(int64_t batch, int64_t M, int64_t N, int64_t K, const float* grad_c, const float* a,
                     const float* b, int64_t b_batch_stride, float* grad_a, float* grad_b);

// y[M, out] = x[M, in] @ w[out, in]^T + bias[out] (bias may be null).
void linear(int64_t M, int64_t in, int64_t out, const float* x, const float* w, const float* bias, float* y);
// Gradients of linear; any of grad_x, grad_w, grad_bias may be null to skip it.
void linear_backward(int64_t M, int64_t in, int64_t out, const float* grad_y, const float* x, const float* w,
                     float* grad_x, float* grad_w, float* grad_bias);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
