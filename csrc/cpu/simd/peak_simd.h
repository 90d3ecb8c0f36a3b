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
};

}  // namespace fastnn::cpu
