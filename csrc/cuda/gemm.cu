// Dense matrix products on the GPU: one general strided, batched SGEMM kernel, and matmul and
// linear (forward and backward) expressed as GEMMs over other strides. The kernel is the classic
// register-blocked one for FP32 without tensor cores: 128 x 128 tiles of C, 8 x 8 outputs per
// thread, float4 loads from global and shared memory where the layout allows, and shared memory
// double-buffered behind a register prefetch so loads overlap the FMAs.
#include "fastnn/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "cuda/launch.h"

namespace fastnn::cuda {
namespace {

// A block computes a kTile x kTile tile of C in steps of kTileK along K. Its 256 threads each hold
// an 8 x 8 piece of the tile in registers: per k, two float4 of A and two of B from shared memory
// feed 64 FMAs. 64 accumulators and the prefetch fit in 128 registers, so two blocks share an SM.
constexpr int kTile = 128;
constexpr int kTileK = 8;
constexpr int kThreads = 256;
constexpr int kPerThread = 8;
// A shared-memory row is kTile + 4 floats: loads that run along K store a warp's floats at 16
// indices of one row and the same 16 of the row 4 below, which this padding puts in the other
// half of the banks (no conflict); rows stay 16-byte aligned for float4 reads.
constexpr int kRow = kTile + 4;
// Each thread loads 4 of a tile step's kTile * kTileK elements of each operand.
constexpr int kPerLoad = kTile * kTileK / kThreads;
static_assert(kPerLoad == 4, "one float4 per thread and operand");
// The grid's y and z dimensions are limited to 65535 blocks, x to 2^31 - 1.
constexpr int64_t kMaxGridX = 0x7fffffff;
constexpr int64_t kMaxGridZ = 65535;

// One operand seen along C's dimension (M for A, N for B) and K: element (mn, k) of batch z is at
// data[z * batch_stride + mn * mn_stride + k * k_stride], for mn < size. A and B are the same
// thing to the kernel: A's (row, col) strides are (mn, k), B's are (k, mn).
struct Operand {
  const float* data;
  int64_t batch_stride, mn_stride, k_stride;
  int64_t size;
  // float4 loads of 4 elements along the direction the kernel's template picks: those are
  // contiguous and every group of them starts 16-byte aligned.
  bool vector;
};

// Which way a thread's 4 elements run: 4 consecutive k of one row (along_k) or 4 consecutive
// rows (mn) at one k. The contiguous direction when there is one, for float4 loads; else the
// closer one in memory, so that neighbouring threads read nearby addresses.
Operand operand(const float* data, int64_t batch_stride, int64_t mn_stride, int64_t k_stride, int64_t size,
                bool& along_k) {
  const bool aligned = reinterpret_cast<uintptr_t>(data) % 16 == 0 && batch_stride % 4 == 0;
  const bool vector_k = aligned && k_stride == 1 && mn_stride % 4 == 0;
  const bool vector_mn = aligned && mn_stride == 1 && k_stride % 4 == 0;
  along_k = vector_k || (!vector_mn && std::abs(k_stride) <= std::abs(mn_stride));
  return {data, batch_stride, mn_stride, k_stride, size, vector_k || vector_mn};
}

// A thread's place in the loads of a tile step: it reads elements (mn + i, k) along mn or
// (mn, k + i) along k, i < 4. Along k, pairs of threads read the 8 k of one row (32 bytes when
// contiguous); along mn, a warp reads 128 consecutive rows of one k.
template <bool kAlongK>
__device__ int load_mn() {
  return kAlongK ? int(threadIdx.x) / 2 : int(threadIdx.x) % (kTile / kPerLoad) * kPerLoad;
}
template <bool kAlongK>
__device__ int load_k() {
  return kAlongK ? int(threadIdx.x) % 2 * kPerLoad : int(threadIdx.x) / (kTile / kPerLoad);
}

// The thread's 4 elements, the first at p = &element(mn, k); zeros outside the size x K operand,
// whose addresses are never read. A float4 where the operand allows it and all 4 are inside,
// else one at a time (partial tiles, odd strides, unaligned data).
template <bool kAlongK>
__device__ void load(const Operand& x, const float* p, int64_t mn, int64_t k, int64_t K, float (&v)[kPerLoad]) {
  if (x.vector && (kAlongK ? mn < x.size && k + kPerLoad <= K : k < K && mn + kPerLoad <= x.size)) {
    const float4 f = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    return;
  }
  const int64_t step = kAlongK ? x.k_stride : x.mn_stride;
#pragma unroll
  for (int i = 0; i < kPerLoad; ++i)
    v[i] = (kAlongK ? mn < x.size && k + i < K : k < K && mn + i < x.size) ? __ldg(p + i * step) : 0.0f;
}

// Into the shared tile tile[k][mn]: along mn the 4 elements are one float4 of a row.
template <bool kAlongK>
__device__ void store(float (*tile)[kRow], int mn, int k, const float (&v)[kPerLoad]) {
  if (kAlongK) {
#pragma unroll
    for (int i = 0; i < kPerLoad; ++i) tile[k + i][mn] = v[i];
  } else {
    *reinterpret_cast<float4*>(&tile[k][mn]) = make_float4(v[0], v[1], v[2], v[3]);
  }
}

// C_z = alpha * A_z @ B_z + beta * C_z. Blocks stride over the tiles of C (grid x) and over the
// batch (grid z), so any size fits the grid's limits. c_vector: C's rows are 16-byte aligned in
// every batch, so 4 columns whole inside N go as one float4.
template <bool kAAlongK, bool kBAlongK>
__global__ void __launch_bounds__(kThreads, 2)
    gemm_tiles(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, Operand a, Operand b, float beta, float* c,
               int64_t c_batch_stride, int64_t ldc, bool c_vector) {
  // Two buffers: the next step's loads land in one while the FMAs read the other.
  __shared__ __align__(16) float a_tile[2][kTileK][kRow];  // a_tile[s][k][i] = A(row0 + i, k0 + k)
  __shared__ __align__(16) float b_tile[2][kTileK][kRow];  // b_tile[s][k][j] = B(k0 + k, col0 + j)
  // The 8 warps split the tile 4 (rows) x 2 (columns), 32 x 64 each; a warp's lanes 4 x 8. A
  // thread owns rows row + 16 * p + r and columns col + 32 * q + s (p, q < 2; r, s < 4): per k a
  // warp reads 4 distinct float4 of A and 8 consecutive of B, with no bank conflict.
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int row = warp / 2 * 32 + lane / 8 * 4;
  const int col = warp % 2 * 64 + lane % 8 * 4;
  const int a_mn = load_mn<kAAlongK>(), a_k = load_k<kAAlongK>();
  const int b_mn = load_mn<kBAlongK>(), b_k = load_k<kBAlongK>();
  const int64_t tiles_n = (N + kTile - 1) / kTile;
  const int64_t tiles = tiles_n * ((M + kTile - 1) / kTile);
  const int64_t steps = (K + kTileK - 1) / kTileK;
  for (int64_t z = blockIdx.z; z < batch; z += gridDim.z) {
    for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const int64_t row0 = tile / tiles_n * kTile;
      const int64_t col0 = tile % tiles_n * kTile;
      const int64_t a_row = row0 + a_mn, b_col = col0 + b_mn;
      const float* a_next = a.data + z * a.batch_stride + a_row * a.mn_stride + a_k * a.k_stride;
      const float* b_next = b.data + z * b.batch_stride + b_col * b.mn_stride + b_k * b.k_stride;
      float a_values[kPerLoad], b_values[kPerLoad];
      float acc[kPerThread][kPerThread] = {};
      if (steps > 0) {
        load<kAAlongK>(a, a_next, a_row, a_k, K, a_values);
        load<kBAlongK>(b, b_next, b_col, b_k, K, b_values);
        store<kAAlongK>(a_tile[0], a_mn, a_k, a_values);
        store<kBAlongK>(b_tile[0], b_mn, b_k, b_values);
        __syncthreads();
      }
      for (int64_t step = 0; step < steps; ++step) {
        const int buffer = int(step % 2);
        const bool more = step + 1 < steps;
        // Issued before the FMAs, used after them: the global loads' latency hides behind this step.
        if (more) {
          a_next += kTileK * a.k_stride;
          b_next += kTileK * b.k_stride;
          const int64_t k0 = (step + 1) * kTileK;
          load<kAAlongK>(a, a_next, a_row, k0 + a_k, K, a_values);
          load<kBAlongK>(b, b_next, b_col, k0 + b_k, K, b_values);
        }
#pragma unroll
        for (int k = 0; k < kTileK; ++k) {
          float a_column[kPerThread], b_row[kPerThread];
#pragma unroll
          for (int p = 0; p < 2; ++p) {
            const float4 av = *reinterpret_cast<const float4*>(&a_tile[buffer][k][row + 16 * p]);
            const float4 bv = *reinterpret_cast<const float4*>(&b_tile[buffer][k][col + 32 * p]);
            a_column[4 * p] = av.x, a_column[4 * p + 1] = av.y, a_column[4 * p + 2] = av.z, a_column[4 * p + 3] = av.w;
            b_row[4 * p] = bv.x, b_row[4 * p + 1] = bv.y, b_row[4 * p + 2] = bv.z, b_row[4 * p + 3] = bv.w;
          }
#pragma unroll
          for (int r = 0; r < kPerThread; ++r)
#pragma unroll
            for (int s = 0; s < kPerThread; ++s) acc[r][s] = fmaf(a_column[r], b_row[s], acc[r][s]);
        }
        // The other buffer was last read in the previous step, which every thread has finished.
        if (more) {
          store<kAAlongK>(a_tile[1 - buffer], a_mn, a_k, a_values);
          store<kBAlongK>(b_tile[1 - buffer], b_mn, b_k, b_values);
        }
        // The next step reads what was just stored; after the last, the next tile's first loads
        // overwrite buffer 0.
        __syncthreads();
      }
      float* c_z = c + z * c_batch_stride;
#pragma unroll
      for (int r = 0; r < kPerThread; ++r) {
        const int64_t i = row0 + row + 16 * (r / 4) + r % 4;
        if (i >= M) continue;
#pragma unroll
        for (int q = 0; q < 2; ++q) {
          const int64_t j = col0 + col + 32 * q;
          float* out = c_z + i * ldc + j;
          float v[4];
#pragma unroll
          for (int s = 0; s < 4; ++s) v[s] = alpha * acc[r][4 * q + s];
          // beta == 0 does not read C: it may hold NaN garbage from a fresh allocation.
          if (c_vector && j + 4 <= N) {
            if (beta != 0.0f) {
              const float4 old = *reinterpret_cast<const float4*>(out);
              v[0] += beta * old.x, v[1] += beta * old.y, v[2] += beta * old.z, v[3] += beta * old.w;
            }
            *reinterpret_cast<float4*>(out) = make_float4(v[0], v[1], v[2], v[3]);
          } else {
#pragma unroll
            for (int s = 0; s < 4; ++s)
              if (j + s < N) out[s] = beta == 0.0f ? v[s] : v[s] + beta * out[s];
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
  bool a_along_k, b_along_k;
  const Operand a_operand = operand(a, a_batch_stride, a_row_stride, a_col_stride, M, a_along_k);
  const Operand b_operand = operand(b, b_batch_stride, b_col_stride, b_row_stride, N, b_along_k);
  const bool c_vector = reinterpret_cast<uintptr_t>(c) % 16 == 0 && ldc % 4 == 0 && c_batch_stride % 4 == 0;
  auto kernel = a_along_k ? (b_along_k ? gemm_tiles<true, true> : gemm_tiles<true, false>)
                          : (b_along_k ? gemm_tiles<false, true> : gemm_tiles<false, false>);
  kernel<<<grid, kThreads, 0, stream>>>(batch, M, N, K, alpha, a_operand, b_operand, beta, c, c_batch_stride, ldc,
                                        c_vector);
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
