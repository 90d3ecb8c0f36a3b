#include "cpu/peak.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <new>
#include <vector>

#include "cpu/dispatch.h"
#include "cpu/huge_pages.h"
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

double thread_cpu_seconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return double(now.tv_sec) + 1e-9 * double(now.tv_nsec);
}

}  // namespace

// Each thread times its own loop in CPU time, so the figure is what the cores can do even while
// other processes share them (wall time there measured as little as a quarter of the peak, and
// the bench's kernels then ran at "over 100%").
double fma_peak_gflops() {
  const PeakKernels& kernels = *isa().peak;
  const int64_t threads = num_threads();
  const int64_t iterations = 10'000'000;  // ~25 ms per thread at AVX-512 speed
  std::vector<float> sinks(threads * 16);
  std::vector<double> seconds(threads, 1e30);
  for (int repeat = 0; repeat < 5; ++repeat) {
    parallel_for(threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const double start = thread_cpu_seconds();
        kernels.fma_loop(iterations, &sinks[t * 16]);
        seconds[t] = std::min(seconds[t], thread_cpu_seconds() - start);
      }
    });
  }
  double gflops = 0.0;
  for (double s : seconds) gflops += double(kernels.flops_per_iteration) * iterations / s * 1e-9;
  return gflops;
}

double copy_bandwidth_gbps(int64_t bytes, bool streaming) {
  const int64_t n = bytes / int64_t(sizeof(float));
  // The buffers get transparent huge pages, as NumPy's large arrays (the bench's operands) do:
  // with 4 KB pages the streaming copy measured 30-48 GB/s where a relu forward, a streaming
  // copy in effect, moved 56 between NumPy arrays.
  const size_t padded = (size_t(n) * sizeof(float) + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> source(static_cast<float*>(allocate_huge_pages(padded)));
  std::unique_ptr<float, Free> destination(static_cast<float*>(allocate_huge_pages(padded)));
  if (!source || !destination) throw std::bad_alloc();
  std::fill_n(source.get(), n, 1.0f);
  std::fill_n(destination.get(), n, 0.0f);
  const PeakKernels& kernels = *isa().peak;
  const auto copy = streaming ? kernels.copy_streaming : kernels.copy;
  // Best of 10: other processes share these cores, and a run where one thread is descheduled
  // measures the scheduler, not the memory.
  double seconds = best_seconds(10, [&] {
    parallel_for(n, 1 << 18, [&](int64_t begin, int64_t end) {
      copy(source.get() + begin, destination.get() + begin, end - begin);
    });
  });
  return 2.0 * double(n * sizeof(float)) / seconds * 1e-9;
}

}  // namespace fastnn::cpu
