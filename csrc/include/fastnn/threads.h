// The thread count every CPU kernel uses: one setting per process, shared with the Python
// package when both are loaded (they use the same libfastnn.so).
#pragma once

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// Threads a kernel started from the calling thread may use: set_num_threads's process-wide
// value (OMP_NUM_THREADS or the core count until it is called), lowered to the calling thread's
// OpenMP limit when something set that below the default (threadpoolctl's threadpool_limits,
// omp_set_num_threads), so fastnn never adds threads where the host asked for fewer. 1 in a
// process forked after fastnn started OpenMP threads: libgomp's pool does not survive fork(),
// and a parallel region there would wait forever for threads that do not exist. 1 in a build
// without OpenMP.
int num_threads();
// Throws std::invalid_argument when n < 1.
void set_num_threads(int n);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
