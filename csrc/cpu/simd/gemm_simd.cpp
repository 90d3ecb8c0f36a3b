// GEMM micro-kernel written with GCC vector extensions, so the same source becomes AVX-512,
// AVX2+FMA or SSE2 code depending on the -m flags of the translation unit.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "cpu/simd/gemm_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

#if defined(__AVX512F__)
// 8 x 3 zmm accumulators (+ 3 B vectors + 1 broadcast: 28 of 32 registers), the tile MKL's
// sgemm uses here: 11 loads per 24 FMAs where 8 x 2 needed 10 per 16. Channel counts and batch
// sizes (the M of conv and linear) are multiples of 8, so no row of a tile is wasted. On a Xeon
// (Sapphire Rapids class, 48 KB L1), 1 thread, 2048^3 in gemm's loop order: 8 x 48 ran 1.12x
// 8 x 32; 12x32 and 14x32 had measured the same as 8 x 32.
constexpr int kMR = 8;
constexpr int kVecs = 3;
// The wide tile, 6 x 4 zmm accumulators (+ 4 B vectors + 1 broadcast: 29 registers): 10 loads
// per 24 FMAs where 64 columns as two 8 x 32 tiles took 10 per 16. With A and B read in place
// (small products, see gemm.cpp), 1 thread, CPU time, 64^3 vs NumPy in the same process, 10
// alternated runs, medians: 0.84 -> 0.90x (faster 10/10); 4 x 4 vectors 0.89x.
constexpr int kWideRows = 6;
constexpr int kWideVecs = 4;
#elif defined(__AVX2__)
constexpr int kMR = 6;  // 6 x 2 ymm accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers
constexpr int kVecs = 2;
#else
constexpr int kMR = 4;  // 4 x 2 xmm accumulators of 16 SSE registers
constexpr int kVecs = 2;
#endif
constexpr int kNR = kVecs * kWidth;

// acc += A(0:kRows, 0:kc) B(0:kc, 0:kTileVecs*kWidth), A(i, k) = a[i*a_row_stride + k*a_col_stride],
// B(k, j) = b[k*b_row_stride + j]. kPacked: both come from pack_a/pack_b, and their strides are
// the constants the unrolled loop folds into its addresses. Rows past `rows` repeat the last one
// (in bounds; the caller drops their results).
// Per k, AVX-512: 3 B loads, 8 broadcasts, 24 FMAs, no spills. On the Xeon, 1 thread, best of 31
// runs, panels in L1 (kc=128): 78-92% of the FMA peak (the spread is the shared VM's), plus about
// 50 cycles per call outside the loop (fitted from kc 64 -> 512); AVX2 79-92%, about 60 cycles.
// In gemm's loop it loses a few % more to feeding: with A panels from L3 (256 of them) instead of
// L2 (16) the loop was slower 28/31 and 30/31 times. Within noise or slower (alternated, 2048^3 or
// 1024^3 in gemm's loop): prefetching B 8 or 16 k ahead, the next A panel into L2 (faster 15/41,
// 8/61), C again 16 k before the end, unroll 8, no multiply when alpha is 1 (AVX2 21/41), 8 x 32
// tiles (9/31).
template <int kRows, int kTileVecs, bool kPacked>
[[gnu::always_inline]] inline void accumulate(vec (&acc)[kRows][kTileVecs], int64_t kc, const float* a,
                                              int64_t a_row_stride, int64_t a_col_stride, int64_t rows, const float* b,
                                              int64_t b_row_stride) {
  const float* row[kRows];
  for (int i = 0; i < kRows; ++i) row[i] = a + std::min<int64_t>(i, rows - 1) * a_row_stride;
  // Unrolled, the loop's pointer and counter updates take fewer of the FMA ports' issue slots.
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    vec bv[kTileVecs];
    for (int v = 0; v < kTileVecs; ++v) bv[v] = load(b + v * kWidth);
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
      const float ai = kPacked ? a[i] : row[i][k * a_col_stride];
#pragma GCC unroll 4
      for (int v = 0; v < kTileVecs; ++v) acc[i][v] += ai * bv[v];
    }
    a += kMR;
    b += kPacked ? kNR : b_row_stride;
  }
}

// kRows rows by kTileVecs vectors of C columns.
template <int kRows, int kTileVecs>
void micro(int64_t kc, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
           int64_t b_row_stride, float* c, int64_t ldc, int64_t rows, int64_t cols, float alpha, float beta) {
  vec acc[kRows][kTileVecs] = {};
  // C is read only after the k loop; fetching its lines now hides their miss behind the FMAs.
  for (int64_t i = 0; i < rows; ++i) {
    for (int v = 0; v < kTileVecs; ++v) __builtin_prefetch(c + i * ldc + v * kWidth, 1);
    __builtin_prefetch(c + i * ldc + kTileVecs * kWidth - 1, 1);
  }
  // Whole packed panels (the usual case) get constant offsets; anything else is read as given.
  if (kRows == kMR && a_row_stride == 1 && a_col_stride == kMR && rows == kMR && b_row_stride == kNR)
    accumulate<kRows, kTileVecs, true>(acc, kc, a, a_row_stride, a_col_stride, rows, b, b_row_stride);
  else
    accumulate<kRows, kTileVecs, false>(acc, kc, a, a_row_stride, a_col_stride, rows, b, b_row_stride);
  if (rows == kRows && cols == kTileVecs * kWidth) {
#pragma GCC unroll 16
    for (int i = 0; i < kRows; ++i) {
      float* row = c + i * ldc;
      for (int v = 0; v < kTileVecs; ++v) {
        vec r = alpha * acc[i][v];
        if (beta != 0.0f) r += beta * load(row + v * kWidth);
        store(row + v * kWidth, r);
      }
    }
    return;
  }
  alignas(64) float tile[kRows][kTileVecs * kWidth];
  std::memcpy(tile, acc, sizeof tile);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float r = alpha * tile[i][j];
      c[i * ldc + j] = beta != 0.0f ? r + beta * c[i * ldc + j] : r;
    }
}

typedef int32_t ivec __attribute__((vector_size(kWidth * sizeof(int32_t))));

// Swaps the off-diagonal kHalf-wide lane blocks of rows lo and hi: with kHalf = kWidth/2,
// kWidth/4, ..., 1 over every row pair this transposes kWidth x kWidth in kWidth*log2(kWidth)
// two-source shuffles (64 for a 16x16 zmm tile: ~0.25 shuffles per float where a scalar
// transpose pays a load and a store per float).
template <int kHalf>
[[gnu::always_inline]] inline void swap_blocks(vec& lo, vec& hi) {
  ivec from_lo, from_hi;
  for (int l = 0; l < kWidth; ++l) {
    from_lo[l] = (l & kHalf) ? kWidth + l - kHalf : l;
    from_hi[l] = (l & kHalf) ? kWidth + l : l + kHalf;
  }
  const vec new_lo = __builtin_shuffle(lo, hi, from_lo);
  hi = __builtin_shuffle(lo, hi, from_hi);
  lo = new_lo;
}

template <int kHalf>
[[gnu::always_inline]] inline void transpose_step(vec (&rows)[kWidth]) {
  for (int i = 0; i < kWidth; ++i)
    if (!(i & kHalf)) swap_blocks<kHalf>(rows[i], rows[i + kHalf]);
  if constexpr (kHalf > 1) transpose_step<kHalf / 2>(rows);
}

// rows[r][l] becomes rows[l][r].
[[gnu::always_inline]] inline void transpose(vec (&rows)[kWidth]) { transpose_step<kWidth / 2>(rows); }

// Packs a kc x count block whose unit stride runs along k (a row-major A, a transposed B):
// dst[k*dst_stride + j] = src[j*src_stride + k] for j < count <= kLanes <= kWidth (zero for
// count <= j < kLanes: the panel's padding) through kWidth x kWidth register transposes, kLanes
// lanes stored per k. Returns the k where the whole-vector part ends. Rows past count reload the
// last one and a lane mask zeroes them after the transpose, so the rows stay in registers: loaded
// for j < count into a zeroed array, they lived on the stack (a rep stos, then a store and a
// reload per row). 1 thread, same process, 11 alternations: 64x9216 @ (128x9216)^T 115 -> 119
// GF/s (faster 11/11), AVX2 56 -> 64 (10/11); 2048^3 with A transposed 129 -> 134 (8/11).
template <int kLanes>
int64_t pack_transposed(const float* src, int64_t src_stride, int64_t count, int64_t kc, int64_t dst_stride,
                        float* dst) {
  ivec valid;
  for (int l = 0; l < kWidth; ++l) valid[l] = l < count ? -1 : 0;
  int64_t k = 0;
  for (; k + kWidth <= kc; k += kWidth) {
    vec rows[kWidth];
#pragma GCC unroll 16
    for (int j = 0; j < kWidth; ++j) rows[j] = load(src + std::min<int64_t>(j, count - 1) * src_stride + k);
    transpose(rows);
#pragma GCC unroll 16
    for (int l = 0; l < kWidth; ++l) {
      const vec row = vec(ivec(rows[l]) & valid);
      if constexpr (kLanes == kWidth)
        store(dst + (k + l) * dst_stride, row);
      else
        std::memcpy(dst + (k + l) * dst_stride, &row, kLanes * sizeof(float));
    }
  }
  return k;
}

// kMR <= kWidth on every ISA: one transpose covers a panel's rows.
void pack_a(const float* a, int64_t row_stride, int64_t col_stride, int64_t rows, int64_t kc, float* dst) {
  // A transposed (the weight gradients of matmul and linear): a panel's kMR floats at each k are
  // contiguous, one fixed-size copy per k instead of kMR scalar ones, which took 8% of a 1024^3
  // A^T @ B. Packing a 2048x2048 A^T in 256-k blocks, 1 thread, 61 alternations, medians:
  // AVX-512 0.66 -> 0.51 ns per float (faster 57/61), AVX2 1.11 -> 0.58 (61/61).
  if (row_stride == 1 && rows == kMR) {
    for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * kMR, a + k * col_stride, kMR * sizeof(float));
    return;
  }
  const int64_t k0 = col_stride == 1 ? pack_transposed<kMR>(a, row_stride, rows, kc, kMR, dst) : 0;
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t i = 0; i < rows; ++i) dst[k * kMR + i] = a[i * row_stride + k * col_stride];
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t i = rows; i < kMR; ++i) dst[k * kMR + i] = 0.0f;
}

void pack_b(const float* b, int64_t row_stride, int64_t col_stride, int64_t cols, int64_t kc, float* dst) {
  if (col_stride == 1) {
    // Vector copies and stores, the padding too: a memcpy and a memset call per row of a narrow
    // last panel took 12% of 64^3.
    const int64_t whole = cols / kWidth * kWidth;
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = b + k * row_stride;
      float* row = dst + k * kNR;
      for (int64_t j = 0; j < whole; j += kWidth) store(row + j, load(src + j));
      if (whole == kNR) continue;
      vec last = {};
      for (int64_t j = whole; j < cols; ++j) last[j - whole] = src[j];
      store(row + whole, last);
      for (int64_t j = whole + kWidth; j < kNR; j += kWidth) store(row + j, vec{});
    }
    return;
  }
  int64_t k0 = 0;
  if (row_stride == 1) {
    for (int64_t j0 = 0; j0 < cols; j0 += kWidth)
      k0 = pack_transposed<kWidth>(b + j0 * col_stride, col_stride, std::min<int64_t>(kWidth, cols - j0), kc, kNR,
                                   dst + j0);
  }
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t j = 0; j < cols; ++j) dst[k * kNR + j] = b[k * row_stride + j * col_stride];
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = cols; j < kNR; ++j) dst[k * kNR + j] = 0.0f;
}

}  // namespace

#if defined(__AVX512F__)
extern const GemmKernels gemm_kernels = {kMR,    kNR,    kWidth, {micro<kMR, 1>, micro<kMR, 2>, micro<kMR, kVecs>},
                                         pack_a, pack_b, kWideRows, kWideVecs * kWidth, micro<kWideRows, kWideVecs>};
#else
extern const GemmKernels gemm_kernels = {
    kMR, kNR, kWidth, {micro<kMR, 1>, micro<kMR, 2>, micro<kMR, kVecs>}, pack_a, pack_b, 0, 0, nullptr};
#endif

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
