// GEMM micro-kernel written with GCC vector extensions, so the same source becomes AVX-512,
// AVX2+FMA or SSE2 code depending on the -m flags of the translation unit.
#include <cstring>

#include "cpu/simd/gemm_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

#if defined(__AVX512F__)
// 8 x 2 zmm accumulators: channel counts and batch sizes (the M of conv and linear) are
// multiples of 8, so no row of a tile is wasted; 16 independent FMAs cover the FMA latency, and
// measured on Zen 4 it beat 12x32 and 8x48 on both square and conv-shaped products.
constexpr int kMR = 8;
#elif defined(__AVX2__)
constexpr int kMR = 6;  // 6 x 2 ymm accumulators + 2 B vectors + 1 broadcast = 15 of 16 registers
#else
constexpr int kMR = 4;  // 4 x 2 xmm accumulators of 16 SSE registers
#endif
constexpr int kVecs = 2;
constexpr int kNR = kVecs * kWidth;

void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int64_t rows,
           int64_t cols, float alpha, float beta) {
  vec acc[kMR][kVecs] = {};
  for (int64_t k = 0; k < kc; ++k) {
    vec bv[kVecs];
    for (int v = 0; v < kVecs; ++v) bv[v] = load(b + v * kWidth);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[i][v] += a[i] * bv[v];
    a += kMR;
    b += kNR;
  }
  if (rows == kMR && cols == kNR) {
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      float* row = c + i * ldc;
      for (int v = 0; v < kVecs; ++v) {
        vec r = alpha * acc[i][v];
        if (beta != 0.0f) r += beta * load(row + v * kWidth);
        store(row + v * kWidth, r);
      }
    }
    return;
  }
  alignas(64) float tile[kMR][kNR];
  std::memcpy(tile, acc, sizeof tile);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float r = alpha * tile[i][j];
      c[i * ldc + j] = beta != 0.0f ? r + beta * c[i * ldc + j] : r;
    }
}

}  // namespace

extern const GemmKernels gemm_kernels = {kMR, kNR, micro};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
