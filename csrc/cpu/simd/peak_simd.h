// Loops that measure this machine's limits, compiled once per ISA: the benchmark reports every
// kernel as a fraction of what the same ISA can do here.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

struct PeakKernels {
  int64_t flops_per_iteration;
  // Runs `iterations` rounds of independent FMAs on registers only; writes a result to *sink
  // so the work cannot be optimized away.
  void (*fma_loop)(int64_t iterations, float* sink);
  // dst[0:n] = src[0:n] with plain vector loads and stores, as the elementwise kernels do
  // (memcpy may take other paths), so the benchmark's bandwidth is what those kernels can reach.
  void (*copy)(const float* src, float* dst, int64_t n);
  // The same copy with streaming stores (cpu/simd/stream.h), as kernels with large outputs do.
  void (*copy_streaming)(const float* src, float* dst, int64_t n);
};

}  // namespace fastnn::cpu
