#include "cpu/simd/peak_simd.h"
#include "cpu/simd/stream.h"

namespace fastnn::cpu::FASTNN_ISA_NAMESPACE {
namespace {

// 12 independent chains cover FMA latency (4 cycles) x 2 FMA ports with room to spare.
constexpr int kChains = 12;

void fma_loop(int64_t iterations, float* sink) {
  vec acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = vec{} + 1.0f + i * 1e-3f;
  const vec scale = vec{} + 0.999999f, shift = vec{} + 1e-6f;
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * scale + shift;
  }
  float total = 0.0f;
  for (int i = 0; i < kChains; ++i)
    for (int j = 0; j < kWidth; ++j) total += acc[i][j];
  *sink = total;
}

void copy(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kWidth <= n; i += kWidth) store(dst + i, load(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

void copy_streaming(const float* src, float* dst, int64_t n) {
  int64_t i = until_aligned(dst, n);
  for (int64_t j = 0; j < i; ++j) dst[j] = src[j];
  for (; i + kWidth <= n; i += kWidth) stream(dst + i, load(src + i));
  for (; i < n; ++i) dst[i] = src[i];
  stream_fence();
}

}  // namespace

extern const PeakKernels peak_kernels = {2 * kWidth * kChains, fma_loop, copy, copy_streaming};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
