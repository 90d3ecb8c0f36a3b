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

// dst = a (+ b when `add`); b is unused by the copy.
template <bool streaming, bool add>
void stream_loop(const float* a, const float* b, float* dst, int64_t n) {
  const auto at = [&](int64_t i) { return add ? load(a + i) + load(b + i) : load(a + i); };
  const auto scalar = [&](int64_t i) { dst[i] = add ? a[i] + b[i] : a[i]; };
  int64_t i = 0;
  if (streaming) {
    for (const int64_t head = until_aligned(dst, n); i < head; ++i) scalar(i);
    for (; i + kWidth <= n; i += kWidth) stream(dst + i, at(i));
    stream_fence();
  }
  for (; i + kWidth <= n; i += kWidth) store(dst + i, at(i));
  for (; i < n; ++i) scalar(i);
}

}  // namespace

extern const PeakKernels peak_kernels = {2 * kWidth * kChains,       fma_loop,
                                         stream_loop<false, false>, stream_loop<true, false>,
                                         stream_loop<false, true>,  stream_loop<true, true>};

}  // namespace fastnn::cpu::FASTNN_ISA_NAMESPACE
