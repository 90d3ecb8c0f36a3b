// Dense matrix products on NVIDIA GPUs. Pointers are device memory, float32; sizes and strides
// in elements. Every function launches on `stream` and returns without waiting; a failed
// launch throws std::runtime_error with the CUDA error text.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cuda {

// For b < batch: C_b[M,N] = alpha * A_b[M,K] @ B_b[K,N] + beta * C_b, with
// A_b(i,k) = a[b*a_batch_stride + i*a_row_stride + k*a_col_stride], B_b likewise, and
// C_b(i,j) = c[b*c_batch_stride + i*ldc + j]: transposed or shared operands are just other
// strides (a batch stride of 0 shares an operand). beta == 0 means C is not read.
void gemm(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_batch_stride,
          int64_t a_row_stride, int64_t a_col_stride, const float* b, int64_t b_batch_stride, int64_t b_row_stride,
          int64_t b_col_stride, float beta, float* c, int64_t c_batch_stride, int64_t ldc, cudaStream_t stream);

// As fastnn::cpu's (fastnn/gemm.h): c[batch, M, N] = a[batch, M, K] @ b[batch, K, N], all
// contiguous; b_batch_stride 0 shares b.
void matmul(int64_t batch, int64_t M, int64_t N, int64_t K, const float* a, const float* b, int64_t b_batch_stride,
            float* c, cudaStream_t stream);
// grad_a or grad_b may be null to skip. With b_batch_stride 0, grad_b is [K, N], summed over the batch.
void matmul_backward(int64_t batch, int64_t M, int64_t N, int64_t K, const float* grad_c, const float* a,
                     const float* b, int64_t b_batch_stride, float* grad_a, float* grad_b, cudaStream_t stream);
// y[M, out] = x[M, in] @ w[out, in]^T + bias[out] (bias may be null).
void linear(int64_t M, int64_t in, int64_t out, const float* x, const float* w, const float* bias, float* y,
            cudaStream_t stream);
// Any of grad_x, grad_w, grad_bias may be null to skip it.
void linear_backward(int64_t M, int64_t in, int64_t out, const float* grad_y, const float* x, const float* w,
                     float* grad_x, float* grad_w, float* grad_bias, cudaStream_t stream);

}  // namespace fastnn::cuda
#pragma GCC visibility pop
