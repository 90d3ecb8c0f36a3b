// Threading shared by every CPU kernel: one thread-count setting and one way to split work.
#pragma once
#include <algorithm>
#include <cstdint>

#include "fastnn/threads.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn::cpu {

// Called before each parallel region, so that a later fork knows the child must stay serial.
// Exported from libfastnn.so: fastnn._C calls parallel_for.
#pragma GCC visibility push(default)
void note_parallel_region();
#pragma GCC visibility pop

inline bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

// Calls body(begin, end) on contiguous slices of [0, n). Uses at most one thread per
// min_per_thread items, so small work stays on the calling thread (a parallel region costs
// a few microseconds). Inside an enclosing parallel region it runs serially.
template <class Body>
void parallel_for(int64_t n, int64_t min_per_thread, Body&& body) {
  if (n <= 0) return;
  int64_t threads = std::min<int64_t>(num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread)));
  if (threads <= 1 || in_parallel_region()) {
    body(int64_t(0), n);
    return;
  }
#ifdef _OPENMP
  note_parallel_region();
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) body(begin, end);
  }
#else
  body(int64_t(0), n);
#endif
}

}  // namespace fastnn::cpu
