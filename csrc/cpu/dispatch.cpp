#include "cpu/dispatch.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "cpu/parallel.h"

namespace fastnn::cpu {

#define FASTNN_DECLARE_ISA(ns)                    \
  namespace ns {                                  \
  extern const GemmKernels gemm_kernels;          \
  extern const ActivationKernels activation_kernels; \
  extern const PeakKernels peak_kernels;          \
  extern const Conv2dKernels conv2d_kernels;      \
  extern const SoftmaxKernels softmax_kernels;    \
  extern const PoolKernels pool_kernels;          \
  }
#ifdef FASTNN_X86_ISAS
FASTNN_DECLARE_ISA(avx512)
FASTNN_DECLARE_ISA(avx2)
#endif
FASTNN_DECLARE_ISA(scalar)
#undef FASTNN_DECLARE_ISA

namespace {

struct IsaEntry {
  IsaKernels kernels;
  bool (*supported)();
};

const IsaEntry kIsas[] = {
#ifdef FASTNN_X86_ISAS
    {{"avx512", &avx512::gemm_kernels, &avx512::activation_kernels, &avx512::peak_kernels, &avx512::conv2d_kernels,
      &avx512::softmax_kernels, &avx512::pool_kernels},
     [] {
       return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
     }},
    {{"avx2", &avx2::gemm_kernels, &avx2::activation_kernels, &avx2::peak_kernels, &avx2::conv2d_kernels,
      &avx2::softmax_kernels, &avx2::pool_kernels},
     [] { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }},
#endif
    {{"scalar", &scalar::gemm_kernels, &scalar::activation_kernels, &scalar::peak_kernels, &scalar::conv2d_kernels,
      &scalar::softmax_kernels, &scalar::pool_kernels}, [] { return true; }},
};

const IsaKernels* best_available() {
  for (const IsaEntry& entry : kIsas)
    if (entry.supported()) return &entry.kernels;
  return &kIsas[0].kernels;
}

const IsaKernels* find_available(const std::string& name) {
  for (const IsaEntry& entry : kIsas)
    if (name == entry.kernels.name && entry.supported()) return &entry.kernels;
  std::string choices;
  for (const std::string& available : isas_available()) choices += (choices.empty() ? "" : ", ") + available;
  throw std::invalid_argument("ISA '" + name + "' is not available on this CPU/build; choose one of: " + choices);
}

std::atomic<const IsaKernels*> selected{nullptr};

const IsaKernels* initial_isa() {
  const char* forced = std::getenv("FASTNN_ISA");
  return forced && *forced ? find_available(forced) : best_available();
}

#ifdef _OPENMP
const int openmp_default = omp_get_max_threads();  // at load: OMP_NUM_THREADS or the core count
#else
const int openmp_default = 1;
#endif
std::atomic<int> thread_count{openmp_default};

std::atomic<bool> pool_started{false};
std::atomic<bool> serial_after_fork{false};

// Registered at load; runs in the child of every fork(), os.fork() and multiprocessing's 'fork'.
[[maybe_unused]] const int fork_handler_registered = pthread_atfork(nullptr, nullptr, [] {
  if (pool_started.load(std::memory_order_relaxed)) serial_after_fork.store(true, std::memory_order_relaxed);
});

}  // namespace

const IsaKernels& isa() {
  const IsaKernels* current = selected.load(std::memory_order_acquire);
  if (!current) {
    current = initial_isa();
    selected.store(current, std::memory_order_release);
  }
  return *current;
}

std::vector<std::string> isas_available() {
  std::vector<std::string> names;
  for (const IsaEntry& entry : kIsas)
    if (entry.supported()) names.emplace_back(entry.kernels.name);
  return names;
}

void set_isa(const std::string& name) { selected.store(find_available(name), std::memory_order_release); }

int num_threads() {
  if (serial_after_fork.load(std::memory_order_relaxed)) return 1;
  const int n = thread_count.load(std::memory_order_relaxed);
#ifdef _OPENMP
  const int limit = omp_get_max_threads();
  if (limit < openmp_default) return std::min(n, limit);
#endif
  return n;
}

void note_parallel_region() {
  if (!pool_started.load(std::memory_order_relaxed)) pool_started.store(true, std::memory_order_relaxed);
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  thread_count.store(n, std::memory_order_relaxed);
}

}  // namespace fastnn::cpu
