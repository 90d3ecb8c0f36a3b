// Measured limits of this machine, for the benchmark's "% of peak" columns.
#pragma once
#include <cstdint>

namespace fastnn::cpu {

// Exported from libfastnn.so for fastnn._C; not part of the C++ API (csrc/include/fastnn).
#pragma GCC visibility push(default)
// FMA throughput of the selected ISA on num_threads() threads, GFLOP/s (best of a few runs).
double fma_peak_gflops();
// Parallel copy of `bytes` bytes on num_threads() threads, GB/s counting bytes read + written,
// with regular or streaming (non-temporal) stores.
double copy_bandwidth_gbps(int64_t bytes, bool streaming);
#pragma GCC visibility pop

}  // namespace fastnn::cpu
