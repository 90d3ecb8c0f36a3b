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
  // dst[0:n] = a[0:n], or a[0:n] + b[0:n] for the 2-input loops, with plain vector loads and
  // stores as the elementwise kernels do (memcpy may take other paths), or with streaming stores
  // (cpu/simd/stream.h) as kernels with large outputs do. The copy is a forward's access pattern
  // (one input), the add a backward's (grad_output and the saved input).
  using StreamLoop = void (*)(const float* a, const float* b, float* dst, int64_t n);
  StreamLoop copy, copy_streaming, add, add_streaming;
};

}  // namespace fastnn::cpu
