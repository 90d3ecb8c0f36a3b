#include "cpu/peak.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/parallel.h"

namespace fastnn::cpu {
namespace {

template <class Work>
double best_seconds(int repeats, Work&& work) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    work();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

double fma_peak_gflops() {
  const PeakKernels& kernels = *isa().peak;
  const int64_t threads = num_threads();
  const int64_t iterations = 20'000'000;  // ~50 ms per thread at AVX-512 speed
  std::vector<float> sinks(threads * 16);
  double seconds = best_seconds(3, [&] {
    parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) kernels.fma_loop(iterations, &sinks[t * 16]);
    });
  });
  return double(kernels.flops_per_iteration) * iterations * threads / seconds * 1e-9;
}

double copy_bandwidth_gbps(int64_t bytes) {
  const int64_t n = bytes / int64_t(sizeof(float));
  std::vector<float> source(n, 1.0f), destination(n, 0.0f);
  const PeakKernels& kernels = *isa().peak;
  double seconds = best_seconds(5, [&] {
    parallel_for(n, 1 << 18, [&](int64_t begin, int64_t end) {
      kernels.copy(source.data() + begin, destination.data() + begin, end - begin);
    });
  });
  return 2.0 * double(n * sizeof(float)) / seconds * 1e-9;
}

}  // namespace fastnn::cpu
