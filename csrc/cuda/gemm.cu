// Dense matrix products on the GPU: one general strided, batched GEMM kernel, and matmul and
// linear (forward and backward) expressed as GEMMs over other strides. Written for correctness
// first (issue 6); issue 7 adds vectorized loads, double buffering and a tensor-core path.
#include "fastnn/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "cuda/launch.h"

namespace fastnn::cuda {
namespace {

// Each block computes a kTile x kTile tile of C, stepping through K kTileK at a time: A's
// kTile x kTileK slice and B's kTileK x kTile slice go through shared memory (2 x 4 KB), and each
// of the 256 threads accumulates a 4 x 4 piece of the tile in registers: 16 FMAs per 8 floats read
// from shared memory.
constexpr int kTile = 64;
constexpr int kTileK = 16;
constexpr int kThreadsPerEdge = 16;
constexpr int kThreads = kThreadsPerEdge * kThreadsPerEdge;
constexpr int kPerThread = kTile / kThreadsPerEdge;  // 4 rows and 4 columns of C per thread
// The grid's y and z dimensions are limited to 65535 blocks, x to 2^31 - 1.
constexpr int64_t kMaxGridX = 0x7fffffff;
constexpr int64_t kMaxGridZ = 65535;

// One operand of a batched product: element (row, col) of batch z is at
// data[z * batch_stride + row * row_stride + col * col_stride].
struct Matrix {
  const float* data;
  int64_t batch_stride, row_stride, col_stride;
  // Which way a tile's loads walk: along columns when those are (at least as) close in memory,
  // so that neighbouring threads read neighbouring addresses. Only speed depends on it.
  bool columns_contiguous;
};

Matrix matrix(const float* data, int64_t batch_stride, int64_t row_stride, int64_t col_stride) {
  return {data, batch_stride, row_stride, col_stride, std::abs(col_stride) <= std::abs(row_stride)};
}

// Element (row, col) of batch z, or 0 outside the rows x cols matrix: a partial tile computes with
// zeros and never reads past the operand.
__device__ float load(const Matrix& m, int64_t z, int64_t row, int64_t col, int64_t rows, int64_t cols) {
  return row < rows && col < cols ? m.data[z * m.batch_stride + row * m.row_stride + col * m.col_stride] : 0.0f;
}

// C_z = alpha * A_z @ B_z + beta * C_z. Blocks stride over the tiles of C (grid x) and over the
// batch (grid z), so any size fits the grid's limits.
__global__ void __launch_bounds__(kThreads)
    gemm_tiles(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, Matrix a, Matrix b, float beta, float* c,
               int64_t c_batch_stride, int64_t ldc) {
  // +1 column: a load walking along k stores a warp's 32 floats 65 apart (16 k by 2 rows or
  // columns), at most 2 to a shared-memory bank; 64 apart, they would fall 16 to a bank.
  __shared__ float a_tile[kTileK][kTile + 1];  // a_tile[k][i] = A(row0 + i, k0 + k)
  __shared__ float b_tile[kTileK][kTile + 1];  // b_tile[k][j] = B(k0 + k, col0 + j)
  const int tx = int(threadIdx.x) % kThreadsPerEdge;
  const int ty = int(threadIdx.x) / kThreadsPerEdge;
  const int64_t tiles_n = (N + kTile - 1) / kTile;
  const int64_t tiles = tiles_n * ((M + kTile - 1) / kTile);
  for (int64_t z = blockIdx.z; z < batch; z += gridDim.z) {
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t row0 = tile / tiles_n * kTile;
      const int64_t col0 = tile % tiles_n * kTile;
      // Thread (tx, ty) owns rows row0 + ty + 16 * r and columns col0 + tx + 16 * s: a warp's
      // stores of one (r, s) cover 16 consecutive columns.
      float acc[kPerThread][kPerThread] = {};
      for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
        // Each of the kTile * kTileK elements of both slices, indexed e, loaded by one thread.
        for (int e = int(threadIdx.x); e < kTile * kTileK; e += kThreads) {
          const int ai = a.columns_contiguous ? e / kTileK : e % kTile;
          const int ak = a.columns_contiguous ? e % kTileK : e / kTile;
          a_tile[ak][ai] = load(a, z, row0 + ai, k0 + ak, M, K);
          const int bk = b.columns_contiguous ? e / kTile : e % kTileK;
          const int bj = b.columns_contiguous ? e % kTile : e / kTileK;
          b_tile[bk][bj] = load(b, z, k0 + bk, col0 + bj, K, N);
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < kTileK; ++k) {
          float a_values[kPerThread], b_values[kPerThread];
#pragma unroll
          for (int r = 0; r < kPerThread; ++r) a_values[r] = a_tile[k][ty + kThreadsPerEdge * r];
#pragma unroll
          for (int s = 0; s < kPerThread; ++s) b_values[s] = b_tile[k][tx + kThreadsPerEdge * s];
#pragma unroll
          for (int r = 0; r < kPerThread; ++r)
#pragma unroll
            for (int s = 0; s < kPerThread; ++s) acc[r][s] = fmaf(a_values[r], b_values[s], acc[r][s]);
        }
        __syncthreads();  // the tiles are overwritten by the next step's loads
      }
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int64_t row = row0 + ty + kThreadsPerEdge * r;
#pragma unroll
        for (int s = 0; s < kPerThread; ++s) {
          const int64_t col = col0 + tx + kThreadsPerEdge * s;
          if (row < M && col < N) {
            float* out = c + z * c_batch_stride + row * ldc + col;
            // beta == 0 does not read C: it may hold NaN garbage from a fresh allocation.
            *out = beta == 0.0f ? alpha * acc[r][s] : alpha * acc[r][s] + beta * *out;
          }
        }
      }
    }
  }
}

// y[i, o] = bias[o] for each of the rows x cols elements of y.
__global__ void broadcast_rows(int64_t rows, int64_t cols, const float* bias, float* y) {
  const int64_t count = rows * cols;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    y[e] = bias[e % cols];
}

// sums[o] = sum over i of x[i, o], deterministically: a block takes 32 columns, its kSumLanes
// rows of threads each sum every kSumLanes-th row of x (a warp reads 32 consecutive floats), and
// one row of threads adds the lanes' partial sums in a fixed order.
constexpr int kSumColumns = 32;
constexpr int kSumLanes = 8;

__global__ void column_sums(int64_t rows, int64_t cols, const float* x, float* sums) {
  __shared__ float partial[kSumLanes][kSumColumns];
  for (int64_t col0 = int64_t(blockIdx.x) * kSumColumns; col0 < cols; col0 += int64_t(gridDim.x) * kSumColumns) {
    const int64_t col = col0 + threadIdx.x;
    float sum = 0.0f;
    if (col < cols)
      for (int64_t i = threadIdx.y; i < rows; i += kSumLanes) sum += x[i * cols + col];
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
      float total = 0.0f;
      for (int lane = 0; lane < kSumLanes; ++lane) total += partial[lane][threadIdx.x];
      sums[col] = total;
    }
    __syncthreads();  // partial is overwritten by the next columns
  }
}

}  // namespace

void gemm(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t a_batch_stride,
          int64_t a_row_stride, int64_t a_col_stride, const float* b, int64_t b_batch_stride, int64_t b_row_stride,
          int64_t b_col_stride, float beta, float* c, int64_t c_batch_stride, int64_t ldc, cudaStream_t stream) {
  if (batch <= 0 || M <= 0 || N <= 0) return;  // no C to write (K == 0 still writes beta * C)
  const int64_t tiles = ((M + kTile - 1) / kTile) * ((N + kTile - 1) / kTile);
  const dim3 grid(unsigned(std::min(tiles, kMaxGridX)), 1, unsigned(std::min(batch, kMaxGridZ)));
  gemm_tiles<<<grid, kThreads, 0, stream>>>(batch, M, N, K, alpha,
                                            matrix(a, a_batch_stride, a_row_stride, a_col_stride),
                                            matrix(b, b_batch_stride, b_row_stride, b_col_stride), beta, c,
                                            c_batch_stride, ldc);
  check_launch("gemm");
}

void matmul(int64_t batch, int64_t M, int64_t N, int64_t K, const float* a, const float* b, int64_t b_batch_stride,
            float* c, cudaStream_t stream) {
  if (b_batch_stride == 0) {  // one shared B: the batch is just more rows of A (fuller tiles)
    gemm(1, batch * M, N, K, 1.0f, a, 0, K, 1, b, 0, N, 1, 0.0f, c, 0, N, stream);
    return;
  }
  gemm(batch, M, N, K, 1.0f, a, M * K, K, 1, b, b_batch_stride, N, 1, 0.0f, c, M * N, N, stream);
}

void matmul_backward(int64_t batch, int64_t M, int64_t N, int64_t K, const float* grad_c, const float* a,
                     const float* b, int64_t b_batch_stride, float* grad_a, float* grad_b, cudaStream_t stream) {
  // grad_a_z[M, K] = grad_c_z[M, N] @ b_z^T: B(n, k) = b_z[k * N + n].
  if (grad_a) gemm(batch, M, K, N, 1.0f, grad_c, M * N, N, 1, b, b_batch_stride, 1, N, 0.0f, grad_a, M * K, K, stream);
  if (!grad_b) return;
  if (b_batch_stride == 0) {
    // A shared b's gradient sums a_z^T @ grad_c_z over the batch: one product over K' = batch * M
    // rows, with a and grad_c read as [batch * M, K] and [batch * M, N]. A(k, i) = a[i * K + k].
    gemm(1, K, N, batch * M, 1.0f, a, 0, 1, K, grad_c, 0, N, 1, 0.0f, grad_b, 0, N, stream);
    return;
  }
  // grad_b_z[K, N] = a_z^T @ grad_c_z.
  gemm(batch, K, N, M, 1.0f, a, M * K, 1, K, grad_c, M * N, N, 1, 0.0f, grad_b, K * N, N, stream);
}

void linear(int64_t M, int64_t in, int64_t out, const float* x, const float* w, const float* bias, float* y,
            cudaStream_t stream) {
  constexpr int threads = 256;
  if (bias && M > 0 && out > 0) {  // y starts as the bias in every row; the product adds to it (beta = 1)
    broadcast_rows<<<grid_for(M * out, threads), threads, 0, stream>>>(M, out, bias, y);
    check_launch("linear");
  }
  // y[M, out] = x[M, in] @ w^T: B(k, o) = w[o * in + k].
  gemm(1, M, out, in, 1.0f, x, 0, in, 1, w, 0, 1, in, bias ? 1.0f : 0.0f, y, 0, out, stream);
}

void linear_backward(int64_t M, int64_t in, int64_t out, const float* grad_y, const float* x, const float* w,
                     float* grad_x, float* grad_w, float* grad_bias, cudaStream_t stream) {
  // grad_x[M, in] = grad_y[M, out] @ w[out, in].
  if (grad_x) gemm(1, M, in, out, 1.0f, grad_y, 0, out, 1, w, 0, in, 1, 0.0f, grad_x, 0, in, stream);
  // grad_w[out, in] = grad_y^T @ x: A(o, i) = grad_y[i * out + o].
  if (grad_w) gemm(1, out, in, M, 1.0f, grad_y, 0, 1, out, x, 0, in, 1, 0.0f, grad_w, 0, in, stream);
  if (grad_bias && out > 0) {  // M == 0 still writes zeros
    const int64_t blocks = std::min<int64_t>((out + kSumColumns - 1) / kSumColumns, kMaxGridX);
    column_sums<<<unsigned(blocks), dim3(kSumColumns, kSumLanes), 0, stream>>>(M, out, grad_y, grad_bias);
    check_launch("linear_backward");
  }
}

}  // namespace fastnn::cuda
