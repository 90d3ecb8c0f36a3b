// The thread count every CPU kernel uses: one setting per process, shared with the Python
// package when both are loaded (they use the same libfastnn.so).
#pragma once

// libfastnn.so is built with hidden visibility; what this header declares is its API.
#pragma GCC visibility push(default)
namespace fastnn::cpu {

// Starts as OpenMP's default (OMP_NUM_THREADS when set, else the number of cores); 1 in a
// build without OpenMP.
int num_threads();
// Throws std::invalid_argument when n < 1.
void set_num_threads(int n);

}  // namespace fastnn::cpu
#pragma GCC visibility pop
