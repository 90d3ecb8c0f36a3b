// GEMM micro-kernel written with GCC vector extensions, so the same source becomes AVX-512,
// AVX2+FMA or SSE2 code depending on the -m flags of the translation unit.
#include <cstring>

#include "cpu/simd/gemm_simd.h"
#include "cpu/simd/vec.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

#if defined(__AVX512F__)
constexpr int kMR = 12;  // 12 x 2 zmm accumulators + 2 B vectors + 1 broadcast = 27 of 32 registers
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
    vec b0 = load(b), b1 = load(b + kWidth);
#pragma GCC unroll 16
    for (int i = 0; i < kMR; ++i) {
      acc[i][0] += a[i] * b0;
      acc[i][1] += a[i] * b1;
    }
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
